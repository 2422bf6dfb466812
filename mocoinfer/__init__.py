"""mocoinfer: the shared code behind the Moco-v2 end-to-end inference stages.

The stage scripts at the repository root (pthtar2onnx.py, imagenet_torch_preprocess.py,
get_info.py, run_om_infer.py, vision_metric_ImageNet.py) only parse arguments and call into
this package. Importing it is cheap: torch, onnx and onnxruntime are imported inside the
functions that need them.
"""

__version__ = "0.1.0"

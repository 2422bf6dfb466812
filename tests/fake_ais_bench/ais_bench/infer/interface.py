"""Stand-in for `ais_bench.infer.interface` (ait/components/benchmark/ais_bench/infer/interface.py), tests only.

`InferSession` is the real wrapper's logic over the stand-in `aclruntime` (tests/fake_ais_bench/
aclruntime.py), reduced to what an ordinary numpy inference uses; each method names the real one it
mirrors. Modes other than 'static' and 'dymbatch' raise, as the real `infer` does for an unknown
mode, so a caller cannot lean on behaviour this stand-in does not model.
"""

from __future__ import annotations

import aclruntime
import numpy as np


class InferSession:
    # interface.py InferSession.__init__: options from aclruntime.session_options(), the session
    # from aclruntime.InferenceSession(model_path, device_id, options), output names kept for run.
    def __init__(self, device_id: int, model_path: str, acl_json_path: str = None, debug: bool = False,
                 loop: int = 1):
        self.device_id = device_id
        self.model_path = model_path
        self.loop = loop
        self.options = aclruntime.session_options()
        self.acl_json_path = acl_json_path
        self.debug = debug
        if acl_json_path is not None:
            self.options.acl_json_path = self.acl_json_path
        self.options.log_level = 1 if self.debug else 2
        self.options.loop = self.loop
        self.session = aclruntime.InferenceSession(self.model_path, self.device_id, self.options)
        self.outputs_names = [meta.name for meta in self.session.get_outputs()]
        self.intensors_desc = self.session.get_inputs()
        self.outtensors_desc = self.session.get_outputs()
        self.infer_mode_switch = {"static": self._static_prepare, "dymbatch": self._dymbatch_prepare}

    @staticmethod
    def finalize():
        # interface.py InferSession.finalize (static)
        if hasattr(aclruntime.InferenceSession, "finalize"):
            aclruntime.InferenceSession.finalize()

    def get_inputs(self):
        # interface.py InferSession.get_inputs
        self.intensors_desc = self.session.get_inputs()
        return self.intensors_desc

    def get_outputs(self):
        # interface.py InferSession.get_outputs
        self.outtensors_desc = self.session.get_outputs()
        return self.outtensors_desc

    def set_staticbatch(self):
        # interface.py InferSession.set_staticbatch
        self.session.set_staticbatch()

    def set_dynamic_batchsize(self, dym_batch):
        # interface.py InferSession.set_dynamic_batchsize
        self.session.set_dynamic_batchsize(dym_batch)

    def get_max_dym_batchsize(self):
        # interface.py InferSession.get_max_dym_batchsize
        return self.session.get_max_dym_batchsize()

    def run(self, feeds, out_array=False):
        # interface.py InferSession.run: ndarrays become BaseTensor(address, nbytes); the real
        # returns device tensors unless out_array, then host arrays (np.array of each tensor).
        if len(feeds) > 0 and isinstance(feeds[0], np.ndarray):
            inputs = [aclruntime.BaseTensor(a.__array_interface__["data"][0], a.nbytes) for a in feeds]
        else:
            inputs = feeds
        outputs = self.session.run(self.outputs_names, inputs)
        if not out_array:
            raise NotImplementedError("the stand-in returns host arrays only (out_array=True)")
        return [np.array(t) for t in outputs]

    def reset_summaryinfo(self):
        # interface.py InferSession.reset_summaryinfo
        self.session.reset_sumaryinfo()

    def infer(self, feeds, mode="static", custom_sizes=100000, out_array=True):
        # interface.py InferSession.infer: each ndarray made C-contiguous, its shape collected,
        # the mode's prepare step run, then run(inputs, out_array).
        inputs = []
        shapes = []
        for feed in feeds:
            if type(feed) is np.ndarray:
                infer_input = feed
                if not infer_input.flags.c_contiguous:
                    infer_input = np.ascontiguousarray(infer_input)
                shapes.append(infer_input.shape)
            else:
                raise RuntimeError(f"type:{type(feed)} invalid")
            inputs.append(infer_input)
        if self.infer_mode_switch.get(mode) is not None:
            self.infer_mode_switch.get(mode)(shapes, custom_sizes)
        else:
            raise RuntimeError(f"wrong infer_mode:{mode}, only support \"static\",\"dymbatch\" in the stand-in")
        return self.run(inputs, out_array)

    def free_resource(self):
        # interface.py InferSession.free_resource
        if hasattr(self.session, "free_resource"):
            self.session.free_resource()

    def summary(self):
        # interface.py InferSession.summary: the session's sumary(), whose exec_time_list holds one
        # (start_ms, end_ms) pair per execute.
        return self.session.sumary()

    def _static_prepare(self, shapes, custom_sizes):
        # interface.py InferSession._static_prepare
        self.set_staticbatch()

    def _dymbatch_prepare(self, shapes, custom_sizes):
        # interface.py InferSession._dymbatch_prepare: the first axis the model reports as < 0 takes
        # the feed's size on that axis through set_dynamic_batchsize.
        indesc = self.get_inputs()
        if len(shapes) != len(indesc):
            raise RuntimeError("input datas and intensors nums not matched!")
        for i, shape in enumerate(shapes):
            for j, dim in enumerate(shape):
                if indesc[i].shape[j] < 0:
                    self.set_dynamic_batchsize(dim)
                    return
                if indesc[i].shape[j] != dim:
                    raise RuntimeError("input datas and intensors dim not matched!")
        raise RuntimeError("not a dymbatch model!")

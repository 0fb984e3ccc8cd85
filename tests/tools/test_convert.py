#!/usr/bin/env python3
"""Tests of tools/vim-convert and tools/vimtools/pth_reader.py (unittest, numpy only, no torch).

    python3 tests/tools/test_convert.py [-v]

- the committed tiny_official.pth (made by torch.save, see make_pth_fixture.py)
  converts, and the file holds exactly the saved tensors, the right config
  and metadata, for 'model' and (--ema) 'model_ema', in F32/F16/BF16;
- the architecture (official variant name, stride 16 vs 8) is inferred from
  the shapes of full-size state dicts written without torch (pthwrite.py);
- missing keys, unknown keys, wrong shapes, non-float tensors, a pos_embed
  that fits no stride are refused with a message naming the problem;
- malicious pickles (os.system, builtins.eval, posix.system, an unknown class,
  a __reduce__ gadget, a gadget inside an otherwise good checkpoint) are
  refused naming the global, and the marker file each payload would create
  does not exist; each payload is first shown to be live with plain
  pickle.loads in a child process;
- hostile uses of the admitted globals (out-of-range tensor views, BUILD on a
  tensor, a fake persistent id) and non-checkpoint files are refused.
"""
import collections
import json
import os
import pickle
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)
sys.path.insert(0, HERE)

import pthwrite  # noqa: E402
from pthwrite import Raw, global_op  # noqa: E402
from vimtools import imagenet_classes, pth_reader, random_weights, safetensors_io, vimconfig  # noqa: E402

FIXTURE = os.path.join(HERE, "fixtures", "tiny_official.pth")
EXPECTED = os.path.join(HERE, "fixtures", "tiny_official_expected.json")
CONVERT = os.path.join(TOOLS, "vim-convert")
RANDOM_MODEL = os.path.join(TOOLS, "vim-random-model")


def run_tool(tool, *args, cwd=None):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, tool, *args], capture_output=True, text=True, cwd=cwd, env=env)


def fixture_config():
    with open(EXPECTED) as f:
        fx = json.load(f)
    kw = dict(fx["model"]["config"])
    kw["image_size"] = tuple(kw["image_size"])
    return vimconfig.make_config(**kw), fx


def official_like(cfg, seed, ordered=True):
    """A state dict of numpy arrays with the official key order."""
    t = random_weights.random_tensors(cfg, seed)
    items = [(k, t[k]) for k, _ in vimconfig.tensor_shapes(cfg)]
    return collections.OrderedDict(items) if ordered else dict(items)


class TmpDirTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="vim-convert-test-")
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp, name)


class ConvertFixture(TmpDirTest):
    def convert(self, *extra):
        out = self.path("out.safetensors")
        r = run_tool(CONVERT, FIXTURE, out, *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return safetensors_io.read(out), out

    def test_model_tensors_equal_saved_state_dict(self):
        (tensors, meta), _ = self.convert()
        sd = pth_reader.load(FIXTURE)["model"]
        self.assertEqual(set(tensors), set(sd))
        for k, v in sd.items():
            a = v.numpy()
            self.assertEqual(a.dtype, np.float32, k)
            np.testing.assert_array_equal(tensors[k], a, err_msg=k)

    def test_model_is_the_fixture_model(self):
        (tensors, meta), out = self.convert()
        cfg, fx = fixture_config()
        want = random_weights.random_tensors(cfg, fx["model"]["weight_seed"])
        self.assertEqual(set(tensors), set(want))
        for k in want:
            np.testing.assert_array_equal(tensors[k], want[k], err_msg=k)
        # The converter and `vim-random-model --fixture` agree byte for byte.
        again = self.path("random.safetensors")
        r = run_tool(RANDOM_MODEL, "--fixture", EXPECTED, "-o", again)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f1, open(again, "rb") as f2:
            self.assertEqual(f1.read(), f2.read())

    def test_metadata(self):
        (tensors, meta), _ = self.convert()
        cfg, _ = fixture_config()
        self.assertEqual(meta, vimconfig.metadata(cfg, labels=[f"class_{i}" for i in range(10)]))
        self.assertEqual(meta["stride"], "8")            # inferred from pos_embed's 730 entries
        self.assertEqual(meta["image_size"], "224,224")
        self.assertEqual(meta["resize"], "short-side-crop")
        self.assertEqual(float(meta["crop_ratio"]), 0.875)
        self.assertEqual([float(v) for v in meta["mean"].split(",")], [0.485, 0.456, 0.406])
        self.assertEqual([float(v) for v in meta["std"].split(",")], [0.229, 0.224, 0.225])
        self.assertEqual(float(meta["norm_eps"]), 1e-5)
        self.assertEqual(meta["cls_token"], "middle")

    def test_ema(self):
        (tensors, _), _ = self.convert("--ema")
        cfg, _ = fixture_config()
        want = random_weights.random_tensors(cfg, 2)
        sd = pth_reader.load(FIXTURE)["model_ema"]
        for k in want:
            np.testing.assert_array_equal(tensors[k], want[k], err_msg=k)
            np.testing.assert_array_equal(tensors[k], sd[k].numpy(), err_msg=k)

    def test_half_dtypes(self):
        cfg, _ = fixture_config()
        want = random_weights.random_tensors(cfg, 1)
        (t16, _), out = self.convert("--dtype", "F16")
        with open(out, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        self.assertTrue(all(v["dtype"] == "F16" for k, v in header.items() if k != "__metadata__"))
        for k in want:
            np.testing.assert_array_equal(t16[k], want[k].astype(np.float16).astype(np.float32), err_msg=k)
        (tb, _), _ = self.convert("--dtype", "BF16")
        for k in want:
            np.testing.assert_array_equal(tb[k], safetensors_io.from_bf16(safetensors_io.to_bf16(want[k]))
                                          .reshape(want[k].shape), err_msg=k)

    def test_checkpoint_layout(self):
        ckpt = pth_reader.load(FIXTURE)
        self.assertEqual(set(ckpt), {"model", "optimizer", "lr_scheduler", "epoch", "model_ema", "scaler", "args"})
        self.assertEqual(ckpt["epoch"], 299)
        self.assertEqual(ckpt["scaler"], "none")
        self.assertFalse(ckpt["args"].if_amp)
        self.assertIsInstance(ckpt["model"], collections.OrderedDict)
        st = ckpt["optimizer"]["state"][0]
        self.assertEqual(st["step"].shape, ())
        self.assertEqual(float(st["step"].numpy()), 1.0)


class InferVariants(TmpDirTest):
    """Full-size state dicts (written without torch) get the official name and stride."""

    def check(self, key, dtype=np.float32):
        cfg = vimconfig.variant_config(key)
        sd = official_like(cfg, 5)
        if dtype != np.float32:
            sd = collections.OrderedDict((k, v.astype(dtype)) for k, v in sd.items())
        src, out = self.path("in.pth"), self.path("out.safetensors")
        pthwrite.write_pth(src, {"model": sd, "epoch": 299, "scaler": "none",
                                 "args": pthwrite.Namespace(model=cfg["name"], eval_crop_ratio=0.875)})
        r = run_tool(CONVERT, src, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        tensors, meta = safetensors_io.read(out)
        self.assertEqual(meta, vimconfig.metadata(cfg, labels=list(imagenet_classes.CLASSES)))
        for k, v in sd.items():
            np.testing.assert_array_equal(tensors[k], v.astype(np.float32), err_msg=k)

    def test_vim_ti(self):
        self.check("vim_ti")

    def test_vim_ti_stride8(self):
        self.check("vim_ti_s8")

    def test_vim_s_from_f16_storage(self):
        self.check("vim_s", np.float16)

    def test_bare_state_dict_and_bf16_storage(self):
        cfg, _ = fixture_config()
        sd = official_like(cfg, 1)
        src, out = self.path("bare.pth"), self.path("out.safetensors")
        pthwrite.write_pth(src, collections.OrderedDict((k, pthwrite.Bf16(v)) for k, v in sd.items()))
        r = run_tool(CONVERT, src, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        tensors, _ = safetensors_io.read(out)
        for k, v in sd.items():
            np.testing.assert_array_equal(
                tensors[k], safetensors_io.from_bf16(safetensors_io.to_bf16(v)).reshape(v.shape), err_msg=k)
        r = run_tool(CONVERT, src, out, "--ema")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no 'model_ema'", r.stderr)

    def test_non_square_image_size_option(self):
        cfg = vimconfig.make_config(embed_dim=16, depth=1, stride=4, patch_size=8, image_size=(24, 40),
                                    d_state=4, num_classes=3, name="x")
        src, out = self.path("in.pth"), self.path("out.safetensors")
        pthwrite.write_pth(src, {"model": official_like(cfg, 1)})
        r = run_tool(CONVERT, src, out)
        self.assertEqual(r.returncode, 1)
        self.assertIn("pass --image-size", r.stderr)
        r = run_tool(CONVERT, src, out, "--image-size", "24,40", "--name", "x")
        self.assertEqual(r.returncode, 0, r.stderr)
        _, meta = safetensors_io.read(out)
        self.assertEqual(meta, vimconfig.metadata(cfg, labels=["class_0", "class_1", "class_2"]))


class Refusals(TmpDirTest):
    """Broken state dicts: a clear message, exit status 1, no output file."""

    def refuse(self, sd, *needles, extra=()):
        src, out = self.path("bad.pth"), self.path("out.safetensors")
        pthwrite.write_pth(src, {"model": sd, "model_ema": sd, "epoch": 1})
        r = run_tool(CONVERT, src, out, *extra)
        self.assertEqual(r.returncode, 1, r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out + ".tmp"))
        return r.stderr

    def tiny(self):
        cfg, _ = fixture_config()
        return official_like(cfg, 1)

    def test_missing_key(self):
        sd = self.tiny()
        del sd["layers.1.mixer.D_b"]
        self.refuse(sd, "missing keys: layers.1.mixer.D_b")

    def test_missing_head(self):
        sd = self.tiny()
        del sd["head.weight"]
        self.refuse(sd, "missing key head.weight")

    def test_missing_layer(self):
        sd = self.tiny()
        for k in [k for k in sd if k.startswith("layers.0.")]:
            del sd[k]
        self.refuse(sd, "layers [0] are missing")

    def test_unknown_key(self):
        sd = self.tiny()
        sd["layers.0.mixer.gamma"] = np.ones(32, np.float32)
        sd["rope.freqs_cos"] = np.ones((4, 4), np.float32)
        self.refuse(sd, "unknown keys: layers.0.mixer.gamma, rope.freqs_cos")

    def test_wrong_shape(self):
        sd = self.tiny()
        sd["layers.1.mixer.x_proj_b.weight"] = np.ascontiguousarray(sd["layers.1.mixer.x_proj_b.weight"].T)
        self.refuse(sd, "wrong shapes: layers.1.mixer.x_proj_b.weight has shape (64, 18), expected (18, 64)")

    def test_wrong_shape_of_a_parameter_used_for_inference(self):
        sd = self.tiny()
        sd["layers.1.mixer.A_log"] = np.zeros((64, 16), np.float32)    # layer 0 says N = 8
        self.refuse(sd, "layers.1.mixer.A_log has shape (64, 16), expected (64, 8)")

    def test_not_float(self):
        sd = self.tiny()
        sd["head.bias"] = np.zeros(10, np.int64)
        self.refuse(sd, "not floating point: head.bias")

    def test_pos_embed_fits_no_stride(self):
        sd = self.tiny()
        sd["pos_embed"] = np.zeros((1, 200, 32), np.float32)
        self.refuse(sd, "pos_embed has 200 entries")

    def test_wrong_stride_option(self):
        self.refuse(self.tiny(), "stride 16 gives 196 patches", extra=("--stride", "16"))

    def test_no_model(self):
        src, out = self.path("bad.pth"), self.path("out.safetensors")
        pthwrite.write_pth(src, {"state_dict": self.tiny(), "epoch": 3})
        r = run_tool(CONVERT, src, out)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no 'model' in the checkpoint", r.stderr)

    def test_not_a_checkpoint(self):
        out = self.path("out.safetensors")
        txt = self.path("a.pth")
        with open(txt, "w") as f:
            f.write("hello")
        r = run_tool(CONVERT, txt, out)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a torch.save zip archive", r.stderr)
        legacy = self.path("legacy.pth")
        with open(legacy, "wb") as f:
            f.write(pickle.dumps({"model": 1}, protocol=2))
        r = run_tool(CONVERT, legacy, out)
        self.assertEqual(r.returncode, 1)
        self.assertIn("legacy", r.stderr)
        self.assertFalse(os.path.exists(out))


def _s(text):
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


class _ExecGadget:
    """pickle.dumps of this object gives a classic __reduce__ gadget (builtins.exec)."""

    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


class MaliciousPickles(TmpDirTest):
    """Each payload would create a marker file; the converter must refuse it and run nothing."""

    def payloads(self):
        m = self.path
        return {
            # name expected in the message: (pickle bytes, marker)
            "os.system": (b"\x80\x02" + global_op("os", "system") + b"(" + _s(f"touch {m('m_os')}") + b"tR.",
                          m("m_os")),
            "builtins.eval": (b"\x80\x02" + global_op("builtins", "eval") + b"("
                              + _s(f"open({m('m_eval')!r}, 'w').close()") + b"tR.", m("m_eval")),
            # protocol-4 STACK_GLOBAL form
            "posix.system": (b"\x80\x04" + _s("posix") + _s("system") + b"\x93(" + _s(f"touch {m('m_posix')}")
                             + b"tR.", m("m_posix")),
            # an unknown class whose construction would be the attack
            "subprocess.Popen": (b"\x80\x02" + global_op("subprocess", "Popen") + b"(]("
                                 + _s("touch") + _s(m("m_popen")) + b"etR.", m("m_popen")),
            "__main__.Payload": (b"\x80\x02" + global_op("__main__", "Payload") + b")\x81.", None),
            # what pickle.dumps makes of an object with a malicious __reduce__
            "builtins.exec": (pickle.dumps(_ExecGadget(f"open({m('m_exec')!r}, 'w').close()"), protocol=2),
                              m("m_exec")),
        }

    def assert_live(self, data, marker):
        """The payload does create its marker when loaded with plain pickle (in a child)."""
        code = "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"
        subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, cwd=self.tmp)
        self.assertTrue(os.path.exists(marker), f"payload is not live: {data!r}")
        os.unlink(marker)

    def refused(self, src, name, marker):
        out = self.path("out.safetensors")
        r = run_tool(CONVERT, src, out, cwd=self.tmp)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("unsafe checkpoint", r.stderr)
        self.assertIn(f"'{name}'", r.stderr)
        self.assertFalse(os.path.exists(out))
        if marker:
            self.assertFalse(os.path.exists(marker), f"{name} payload ran")
        with self.assertRaises(pth_reader.UnsafePickleError) as cm:
            pth_reader.load(src)
        self.assertIn(name, str(cm.exception))
        if marker:
            self.assertFalse(os.path.exists(marker), f"{name} payload ran")

    def test_payloads(self):
        for name, (data, marker) in self.payloads().items():
            with self.subTest(name=name):
                if marker:
                    self.assert_live(data, marker)
                src = self.path(name + ".pth")
                pthwrite.write_pth(src, {}, pickle_data=data)
                self.refused(src, name, marker)

    def test_gadget_inside_good_checkpoint(self):
        cfg, _ = fixture_config()
        marker = self.path("m_nested")
        gadget = Raw(global_op("posix", "system") + b"(" + _s(f"touch {marker}") + b"tR")
        ckpt = {"args": pthwrite.Namespace(model="vim", hook=gadget), "model": official_like(cfg, 1),
                "epoch": 299}
        data, _ = pthwrite.pickle_bytes(ckpt)
        self.assert_live(data, marker)
        src = self.path("nested.pth")
        pthwrite.write_pth(src, ckpt)
        self.refused(src, "posix.system", marker)

    def test_gadget_after_the_tensors(self):
        cfg, _ = fixture_config()
        marker = self.path("m_late")
        ckpt = {"model": official_like(cfg, 1),
                "scaler": Raw(global_op("os", "system") + b"(" + _s(f"touch {marker}") + b"tR")}
        src = self.path("late.pth")
        pthwrite.write_pth(src, ckpt)
        self.refused(src, "os.system", marker)

    def test_torch_globals_outside_the_list(self):
        for mod, name in [("torch", "load"), ("torch._utils", "_rebuild_device_tensor_from_numpy"),
                          ("torch.serialization", "_get_restore_location"), ("numpy.core.multiarray", "scalar"),
                          ("builtins", "getattr"), ("copyreg", "_reconstructor")]:
            with self.subTest(name=f"{mod}.{name}"):
                src = self.path("g.pth")
                pthwrite.write_pth(src, {}, pickle_data=b"\x80\x02" + global_op(mod, name) + b").")
                self.refused(src, f"{mod}.{name}", None)


class HostileButAdmitted(TmpDirTest):
    """Abuse of the admitted globals is caught by the reader's checks."""

    def load_with(self, pickle_data, storages=((b"\0" * 16),)):
        src = self.path("h.pth")
        import zipfile
        with zipfile.ZipFile(src, "w") as z:
            z.writestr("archive/data.pkl", pickle_data)
            for i, raw in enumerate(storages):
                z.writestr(f"archive/data/{i}", raw)
        return pth_reader.load(src)

    @staticmethod
    def tensor_ops(numel, offset, size, stride):
        w = pthwrite._Writer()
        o = w.out
        o += global_op("torch._utils", "_rebuild_tensor_v2") + b"(("
        w.s("storage")
        o += global_op("torch", "FloatStorage")
        w.s("0")
        w.s("cpu")
        w.s(numel)
        o += b"tQ"
        w.s(offset)
        w.s(size)
        w.s(stride)
        w.s(False)
        w.s(collections.OrderedDict())
        o += b"tR"
        return w

    def test_views_past_the_storage(self):
        for offset, size, stride in [(3, (2,), (1,)), (0, (2, 2), (3, 1)), (0, (5,), (1,)), (-1, (1,), (1,)),
                                     (0, (2,), (-1,))]:
            with self.subTest(offset=offset, size=size, stride=stride):
                w = self.tensor_ops(4, offset, size, stride)
                with self.assertRaises(pth_reader.PthError):
                    self.load_with(bytes(w.out) + b".")

    def test_good_view(self):
        w = self.tensor_ops(4, 1, (3,), (1,))
        t = self.load_with(bytes(w.out) + b".", [np.arange(4, dtype="<f4").tobytes()])
        np.testing.assert_array_equal(t.numpy(), [1, 2, 3])
        w = self.tensor_ops(4, 0, (2, 2), (1, 2))   # a transposed view
        t = self.load_with(bytes(w.out) + b".", [np.arange(4, dtype="<f4").tobytes()])
        np.testing.assert_array_equal(t.numpy(), [[0, 2], [1, 3]])

    def test_storage_size_mismatch(self):
        w = self.tensor_ops(4, 0, (4,), (1,))
        t = self.load_with(bytes(w.out) + b".", [b"\0" * 12])
        with self.assertRaises(pth_reader.PthError) as cm:
            t.numpy()
        self.assertIn("has 12 bytes, expected 16", str(cm.exception))

    def test_build_on_a_tensor(self):
        w = self.tensor_ops(4, 0, (4,), (1,))
        w.s({"offset": 10 ** 9})
        w.out += b"b."
        with self.assertRaises(pth_reader.UnsafePickleError):
            self.load_with(bytes(w.out))

    def test_fake_persistent_ids(self):
        for pid in [b"(" + _s("storage") + _s("x") + _s("0") + _s("cpu") + b"J\x04\0\0\0tQ.",
                    b"(" + _s("storage") + global_op("torch", "FloatStorage") + _s("../../etc/passwd")
                    + _s("cpu") + b"J\x04\0\0\0tQ.",
                    _s("just a string") + b"Q."]:
            with self.subTest(pid=pid):
                with self.assertRaises(pth_reader.PthError):
                    self.load_with(b"\x80\x02" + pid)

    def test_calling_a_storage_class(self):
        with self.assertRaises(pth_reader.UnsafePickleError):
            self.load_with(b"\x80\x02" + global_op("torch", "FloatStorage") + b")R.")


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/python3
"""ONNX node-test conformance runner for kiln.

For every case under <data-dir>/<case>/ (model.onnx + test_data_set_*/), this
script compiles the model with `kiln-compile`, runs it with `kiln-run` on each
data set, and compares the produced `.npy` outputs with the reference
`output_K.pb` tensors.  Each case is classified as `pass` or `fail <category>`
and optionally checked against an expected-results file.

Run it with /usr/bin/python3 (it needs the `onnx` and `numpy` modules).
See test/conformance/README.md.

Exit status: 0 = no regressions and no crashes, 1 = regression(s) or
crash(es), 2 = usage/setup error (e.g. missing tool binary or data dir).
The last line printed on stdout is always `N passed, M failed` when the run
completes.
"""

import argparse
import collections
import concurrent.futures
import datetime
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import traceback

try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
except ImportError as e:  # pragma: no cover - environment problem
    sys.stderr.write(
        "run_node_tests.py: error: cannot import %s (run this script with "
        "/usr/bin/python3, which has python3-onnx and python3-numpy)\n" % e.name)
    sys.exit(2)

DEFAULT_DATA_DIR = "/usr/share/libonnx-testdata/data/node"
SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(SCRIPT_DIR))

# Failure categories (the token written to results / expected files).
PASS = "pass"
CATEGORIES = (
    "compile-error",
    "run-error",
    "mismatch",
    "shape-mismatch",
    "dtype-mismatch",
    "missing-output",
    "unsupported-type",
    "timeout",
    "crash",
    "runner-error",
)

# Longest informational list printed to the console (regressions and crashes
# are always listed in full).
LIST_LIMIT = 40

# Ops that are never the "interesting" op of a test case.
TRIVIAL_OPS = {"Constant", "Identity"}

_SANITIZE_RE = re.compile(r"[^A-Za-z0-9._-]")
_CRASH_PATTERNS = ("Segmentation fault", "Aborted", "core dumped")


def sanitize(name):
    """File name kiln-run uses for an output (see kiln-run --output-dir)."""
    return _SANITIZE_RE.sub("_", name)


class CaseResult(object):
    __slots__ = ("case", "op", "category", "detail")

    def __init__(self, case, op, category=PASS, detail=""):
        self.case = case
        self.op = op
        self.category = category
        self.detail = detail

    @property
    def passed(self):
        return self.category == PASS

    def status_line(self):
        if self.passed:
            return "%s pass" % self.case
        return "%s fail %s" % (self.case, self.category)


class Failure(Exception):
    """A classified failure of one case."""

    def __init__(self, category, detail=""):
        Exception.__init__(self, "%s: %s" % (category, detail))
        self.category = category
        self.detail = detail


# --------------------------------------------------------------------------
# Subprocess handling
# --------------------------------------------------------------------------

_active_lock = threading.Lock()
_active_procs = set()


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    try:
        proc.kill()
    except OSError:
        pass


def kill_active():
    with _active_lock:
        procs = list(_active_procs)
    for p in procs:
        _kill_group(p)


def _signal_name(num):
    try:
        return signal.Signals(num).name
    except ValueError:
        return "signal %d" % num


def _first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= 300 else line[:297] + "..."
    return "(no output on stderr)"


def run_tool(tool_name, argv, timeout, cwd):
    """Runs one tool; returns stderr on success, raises Failure otherwise.

    `tool_name` is the short name used in messages ("kiln-compile").
    """
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
    except OSError as e:
        raise Failure("runner-error", "cannot execute %s: %s" % (tool_name, e))
    with _active_lock:
        _active_procs.add(proc)
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise Failure("timeout", "%s exceeded %ss" % (tool_name, timeout))
    finally:
        with _active_lock:
            _active_procs.discard(proc)
    rc = proc.returncode
    err = err.decode("utf-8", "replace")
    if rc == 0:
        return err
    # Crash detection: killed by a signal, a shell's 128+N, or the
    # shell's/libc's messages.
    if rc < 0:
        raise Failure("crash", "%s killed by %s" % (tool_name, _signal_name(-rc)))
    if 128 < rc < 128 + 65:
        raise Failure("crash", "%s killed by %s (exit status %d)"
                      % (tool_name, _signal_name(rc - 128), rc))
    for pat in _CRASH_PATTERNS:
        if pat in err:
            if "Segmentation fault" in err:
                sig = "SIGSEGV"
            elif "Aborted" in err:
                sig = "SIGABRT"
            else:
                sig = "a signal"
            line = next(l.strip() for l in err.splitlines() if pat in l)
            raise Failure("crash", "%s killed by %s (exit status %d): %s"
                          % (tool_name, sig, rc, line[:300]))
    cat = "compile-error" if tool_name == "kiln-compile" else "run-error"
    detail = _first_line(err)
    if rc != 1:
        detail = "(exit status %d) %s" % (rc, detail)
    raise Failure(cat, detail)


# --------------------------------------------------------------------------
# Model inspection
# --------------------------------------------------------------------------

def load_model(path):
    return onnx.load(path, load_external_data=False)


def _qualified_op(node):
    if node.domain and node.domain != "ai.onnx":
        return "%s.%s" % (node.domain, node.op_type)
    return node.op_type


def interesting_op(model):
    nodes = list(model.graph.node)
    if not nodes:
        return "(no nodes)"
    for node in reversed(nodes):
        if node.op_type not in TRIVIAL_OPS:
            return _qualified_op(node)
    return _qualified_op(nodes[-1])


def case_op(data_dir, case, model):
    """The op a case tests; `_expanded` cases use their non-expanded twin."""
    if case.endswith("_expanded"):
        twin = os.path.join(data_dir, case[:-len("_expanded")], "model.onnx")
        if os.path.isfile(twin):
            try:
                return interesting_op(load_model(twin))
            except Exception:
                pass
    if model is None:
        return "(unknown)"
    return interesting_op(model)


def _value_kind(value_info):
    kind = value_info.type.WhichOneof("value")
    return kind or "undefined"


def read_tensor_pb(path):
    tensor = onnx.TensorProto()
    with open(path, "rb") as f:
        tensor.ParseFromString(f.read())
    return tensor


def data_set_files(ds_dir, prefix):
    """input_0.pb, input_1.pb, ... in numeric order."""
    files = []
    pat = re.compile(r"^%s_(\d+)\.pb$" % prefix)
    for name in os.listdir(ds_dir):
        m = pat.match(name)
        if m:
            files.append((int(m.group(1)), os.path.join(ds_dir, name)))
    files.sort()
    return files


def map_inputs(graph_inputs, input_files):
    """Pairs input_K.pb files with graph input names.

    input_K.pb maps to the K-th non-initializer input; the TensorProto's own
    name field is preferred when it names one of the graph inputs.
    """
    names = [vi.name for vi in graph_inputs]
    mapping = []
    used = set()
    for k, path in input_files:
        tname = ""
        try:
            tname = read_tensor_pb(path).name
        except Exception:
            tname = ""
        if tname and tname in names and tname not in used:
            name = tname
        elif k < len(names):
            name = names[k]
        else:
            raise Failure("runner-error",
                          "%s has no matching graph input (model has %d inputs)"
                          % (os.path.basename(path), len(names)))
        if name in used:
            raise Failure("runner-error", "graph input %r fed twice" % name)
        used.add(name)
        mapping.append((name, path))
    return mapping


# --------------------------------------------------------------------------
# Output comparison
# --------------------------------------------------------------------------

def _bf16_bits_to_f32(bits):
    bits = np.asarray(bits).astype(np.uint32) << 16
    return bits.view(np.float32)


def _to_str_array(arr):
    def conv(x):
        if isinstance(x, bytes):
            return x.decode("utf-8", "replace")
        return str(x)
    flat = [conv(x) for x in np.asarray(arr, dtype=object).ravel()]
    return np.array(flat, dtype=object).reshape(np.shape(arr))


def load_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except ValueError:
        # Object arrays (e.g. strings) need pickle; this is our own output.
        return np.load(path, allow_pickle=True)


def _fmt_index(idx):
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def compare(name, expected, actual, elem_type, opts):
    """Raises Failure if `actual` does not match `expected`."""
    if elem_type == onnx.TensorProto.BFLOAT16:
        # The reference stores bfloat16 as uint16 bit patterns.
        expected = _bf16_bits_to_f32(expected)
        if actual.dtype == np.uint16 or (actual.dtype.kind == "V"
                                         and actual.dtype.itemsize == 2):
            actual = _bf16_bits_to_f32(actual.view(np.uint16))
        elif actual.dtype != np.float32:
            raise Failure("dtype-mismatch", "output %r: expected bfloat16 "
                          "(uint16 bits or float32), got %s" % (name, actual.dtype))
    elif expected.dtype == object or expected.dtype.kind in "US":
        if actual.dtype.kind not in "USO":
            raise Failure("dtype-mismatch", "output %r: expected string, got %s"
                          % (name, actual.dtype))
        expected = _to_str_array(expected)
        actual = _to_str_array(actual)
    else:
        if opts.dtype_check == "exact":
            ok = actual.dtype == expected.dtype
        else:
            ok = actual.dtype.kind == expected.dtype.kind
        if not ok:
            raise Failure("dtype-mismatch", "output %r: expected %s, got %s"
                          % (name, expected.dtype, actual.dtype))

    if tuple(actual.shape) != tuple(expected.shape):
        raise Failure("shape-mismatch", "output %r: expected shape %s, got %s"
                      % (name, tuple(expected.shape), tuple(actual.shape)))
    if expected.size == 0:
        return

    if expected.dtype == object:
        diff = np.array([a != e for a, e in zip(actual.ravel(), expected.ravel())])
        if diff.any():
            flat = int(np.flatnonzero(diff)[0])
            idx = np.unravel_index(flat, expected.shape)
            raise Failure("mismatch", "output %r: %d/%d strings differ, first at "
                          "%s: expected %r, got %r"
                          % (name, int(diff.sum()), diff.size, _fmt_index(idx),
                             expected.ravel()[flat], actual.ravel()[flat]))
        return

    if expected.dtype.kind in "fc":
        exp = expected.astype(np.complex128 if expected.dtype.kind == "c" else np.float64)
        act = actual.astype(exp.dtype)
        close = np.isclose(act, exp, rtol=opts.rtol, atol=opts.atol, equal_nan=True)
    else:  # bool, ints: exact.
        exp, act = expected, actual
        close = (act == exp)
    close = np.asarray(close)
    if close.all():
        return
    bad = ~close.ravel()
    flat = int(np.flatnonzero(bad)[0])
    idx = np.unravel_index(flat, expected.shape)
    with np.errstate(all="ignore"):
        if exp.dtype.kind in "fc":
            absdiff = np.abs(act.ravel()[bad] - exp.ravel()[bad])
            if np.isnan(absdiff).all():
                maxerr = "nan"
            else:
                maxerr = "%.6g" % np.nanmax(absdiff)
        elif exp.dtype.kind == "b":
            maxerr = "1"
        else:
            maxerr = "%d" % max(abs(int(a) - int(e)) for a, e in
                                zip(act.ravel()[bad][:100000], exp.ravel()[bad][:100000]))
    raise Failure("mismatch", "output %r: %d/%d elements differ, max abs error %s, "
                  "first at %s: expected %s, got %s"
                  % (name, int(bad.sum()), bad.size, maxerr, _fmt_index(idx),
                     expected.ravel()[flat], actual.ravel()[flat]))


# --------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------

def run_case(case, opts, tools):
    """Runs one case; never raises."""
    case_dir = os.path.join(opts.data_dir, case)
    op = "(unknown)"
    work = None
    try:
        model_path = os.path.join(case_dir, "model.onnx")
        model = None
        try:
            model = load_model(model_path)
        finally:
            op = case_op(opts.data_dir, case, model)
        graph = model.graph
        init_names = {t.name for t in graph.initializer}
        init_names.update(t.values.name for t in graph.sparse_initializer)
        graph_inputs = [vi for vi in graph.input if vi.name not in init_names]

        # kiln-run only handles tensors.
        for vi in graph.output:
            if _value_kind(vi) != "tensor_type":
                raise Failure("unsupported-type", "unsupported output type: %r is %s"
                              % (vi.name, _value_kind(vi)))
        for vi in graph_inputs:
            if _value_kind(vi) != "tensor_type":
                raise Failure("unsupported-type", "unsupported input type: %r is %s"
                              % (vi.name, _value_kind(vi)))

        data_sets = sorted(
            d for d in os.listdir(case_dir)
            if d.startswith("test_data_set_") and
            os.path.isdir(os.path.join(case_dir, d)))
        if not data_sets:
            raise Failure("runner-error", "no test_data_set_* directory")

        work = tempfile.mkdtemp(prefix=case + ".", dir=opts.work_root)
        compiled = os.path.join(work, "model.kiln")
        argv = [tools["kiln-compile"], model_path, "-o", compiled]
        if opts.target_flag:
            argv.append("--target=%s" % opts.target_flag)
        run_tool("kiln-compile", argv, opts.timeout, work)
        if not os.path.isfile(compiled):
            raise Failure("compile-error", "kiln-compile exited 0 but wrote no %s"
                          % os.path.basename(compiled))
        if opts.compile_only:
            return CaseResult(case, op)

        for ds in data_sets:
            ds_dir = os.path.join(case_dir, ds)
            inputs = map_inputs(graph_inputs, data_set_files(ds_dir, "input"))
            outputs = data_set_files(ds_dir, "output")
            out_dir = os.path.join(work, "out_" + ds)
            os.mkdir(out_dir)
            argv = opts.run_prefix_argv + [tools["kiln-run"], compiled]
            for name, path in inputs:
                argv += ["--input", "%s=%s" % (name, path)]
            argv += ["--output-dir", out_dir]
            if opts.device:
                argv += ["--device", opts.device]
            if opts.threads is not None:
                argv += ["--threads", str(opts.threads)]
            run_tool("kiln-run", argv, opts.timeout, work)

            if len(outputs) != len(graph.output):
                raise Failure("runner-error", "%s has %d output_K.pb files but the "
                              "model has %d outputs" % (ds, len(outputs),
                                                        len(graph.output)))
            for k, path in outputs:
                vi = graph.output[k]
                expected = numpy_helper.to_array(read_tensor_pb(path))
                produced = os.path.join(out_dir, sanitize(vi.name) + ".npy")
                if not os.path.isfile(produced):
                    raise Failure("missing-output", "kiln-run wrote no %s for output %r"
                                  % (os.path.basename(produced), vi.name))
                try:
                    actual = load_npy(produced)
                except Exception as e:
                    raise Failure("run-error", "cannot read %s: %s"
                                  % (os.path.basename(produced), e))
                compare(vi.name, expected, actual,
                        vi.type.tensor_type.elem_type, opts)
        return CaseResult(case, op)
    except Failure as f:
        return CaseResult(case, op, f.category, f.detail)
    except Exception as e:  # never let one weird case kill the run
        tb = traceback.extract_tb(sys.exc_info()[2])
        where = ("%s:%d" % (os.path.basename(tb[-1].filename), tb[-1].lineno)
                 if tb else "?")
        return CaseResult(case, op, "runner-error",
                          "%s: %s (at %s)" % (type(e).__name__, e, where))
    finally:
        if work and not opts.keep_work:
            shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------
# Expected / results files
# --------------------------------------------------------------------------

def read_status_file(path):
    """Returns {case: 'pass' | 'fail <category>'}."""
    result = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if parts[1:] == ["pass"]:
                result[parts[0]] = "pass"
            elif len(parts) == 3 and parts[1] == "fail":
                result[parts[0]] = "fail " + parts[2]
            elif len(parts) == 2 and parts[1] == "fail":
                result[parts[0]] = "fail"
            else:
                raise ValueError("%s:%d: malformed line: %r" % (path, lineno, line))
    return result


def write_status_file(path, statuses):
    """statuses: {case: 'pass' | 'fail <cat>'}; one sorted line per case."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for case in sorted(statuses):
            f.write("%s %s\n" % (case, statuses[case]))
    os.replace(tmp, path)


def _status(r):
    return "pass" if r.passed else "fail " + r.category


# --------------------------------------------------------------------------
# Markdown report
# --------------------------------------------------------------------------

def _md_escape(text):
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _display_path(path):
    """Paths inside the repository are shown relative to its root."""
    ap = os.path.abspath(path)
    if ap == REPO_ROOT or ap.startswith(REPO_ROOT + os.sep):
        return os.path.relpath(ap, REPO_ROOT)
    return path


def command_line(argv):
    shown = ["test/conformance/run_node_tests.py"]
    for a in argv[1:]:
        if "=" in a and a.startswith("--"):
            k, v = a.split("=", 1)
            shown.append("%s=%s" % (k, _display_path(v)))
        elif os.path.sep in a and os.path.exists(a):
            shown.append(_display_path(a))
        else:
            shown.append(a)
    return shlex.join(shown)


def write_doc(path, results, opts, argv):
    total = len(results)
    passed = sum(1 for r in results if r.passed)
    failed = [r for r in results if not r.passed]
    groups = collections.defaultdict(list)
    for r in failed:
        groups[(r.op, r.category)].append(r)
    by_cat = collections.Counter(r.category for r in failed)

    lines = []
    w = lines.append
    w("# ONNX node-test conformance")
    w("")
    w("<!-- Generated by test/conformance/run_node_tests.py; do not edit by hand. -->")
    w("")
    w("- Command: `%s`" % command_line(argv))
    w("- Date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    w("- Target: `%s`" % opts.target)
    w("- Test data: `%s`" % opts.data_dir)
    if opts.filter:
        w("- Filter: `%s`" % opts.filter)
    w("- Passing: **%d / %d**" % (passed, total))
    w("")
    if by_cat:
        w("## Failures by reason")
        w("")
        w("| Reason | Cases |")
        w("|---|---:|")
        for cat, n in sorted(by_cat.items(), key=lambda kv: (-kv[1], kv[0])):
            w("| %s | %d |" % (cat, n))
        w("")
        w("## Failures by op")
        w("")
        w("| Op | Reason | Cases |")
        w("|---|---|---:|")
        for (op, cat) in sorted(groups):
            w("| %s | %s | %d |" % (_md_escape(op), cat, len(groups[(op, cat)])))
        w("")
        w("## Failing cases")
        w("")
        for (op, cat) in sorted(groups):
            rs = sorted(groups[(op, cat)], key=lambda r: r.case)
            w("<details><summary><b>%s</b> — %s (%d)</summary>"
              % (_md_escape(op), cat, len(rs)))
            w("")
            for r in rs:
                detail = (" — %s" % _md_escape(r.detail)) if r.detail else ""
                w("- `%s`%s" % (r.case, detail))
            w("")
            w("</details>")
            w("")
    else:
        w("All cases pass.")
        w("")
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip("\n") + "\n")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run the ONNX node tests through kiln-compile / kiln-run.")
    p.add_argument("--bin-dir", required=True,
                   help="directory containing kiln-compile and kiln-run")
    p.add_argument("--run-bin-dir", default=None,
                   help="directory containing the kiln-run to use (default: "
                        "--bin-dir); e.g. an aarch64 cross build")
    p.add_argument("--run-prefix", default="",
                   help="command that runs kiln-run, e.g. 'qemu-aarch64' for "
                        "an aarch64 kiln-run on an x86-64 machine")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                   help="ONNX node test data (default: %(default)s)")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                   help="cases run in parallel (default: number of CPUs)")
    p.add_argument("--filter", default=None,
                   help="only run cases whose name matches this regex (re.search)")
    p.add_argument("--target", default="host",
                   help="kiln-compile target; 'host' (default) passes no "
                        "--target flag and uses the compiler's default")
    p.add_argument("--expected", default=None,
                   help="expected-results file to check against")
    p.add_argument("--update-expected", action="store_true",
                   help="rewrite the expected file from this run (default "
                        "file: test/conformance/expected_<target>.txt, "
                        "'host' meaning 'cpu')")
    p.add_argument("--results-out", default=None,
                   help="write this run's results ('<case> pass|fail <reason>')")
    p.add_argument("--doc-out", default=None,
                   help="write a markdown report (e.g. docs/conformance.md)")
    p.add_argument("--timeout", type=float, default=120,
                   help="seconds allowed per tool invocation (default: %(default)s)")
    p.add_argument("--work-dir", default=None,
                   help="where per-case temporary directories go (default: system tmp)")
    p.add_argument("--keep-work", action="store_true",
                   help="keep the per-case temporary directories")
    p.add_argument("--compile-only", action="store_true",
                   help="stop after kiln-compile: a case passes when it compiles (for a "
                        "target no device here can run, e.g. cuda-sm90; the CUDA backend "
                        "assembles its PTX with ptxas where it finds one)")
    p.add_argument("--device", default=None,
                   help="kiln-run --device (e.g. vulkan; default: kiln-run's, cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="kiln-run --threads (default: 1 when --jobs > 1, "
                        "otherwise not passed)")
    p.add_argument("--rtol", type=float, default=1e-3)
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--dtype-check", choices=("exact", "kind"), default="exact",
                   help="'exact': output dtype must equal the reference's; "
                        "'kind': only the kind (float/int/uint/bool) must match")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="print one line per failing case as it finishes")
    opts = p.parse_args(argv)
    if opts.jobs < 1:
        p.error("--jobs must be >= 1")
    if opts.timeout <= 0:
        p.error("--timeout must be > 0")
    if opts.threads is None and opts.jobs > 1:
        opts.threads = 1
    try:
        opts.run_prefix_argv = shlex.split(opts.run_prefix)
    except ValueError as e:
        p.error("--run-prefix: %s" % e)
    opts.target_flag = None if opts.target == "host" else opts.target
    if opts.update_expected and not opts.expected:
        name = "cpu" if opts.target == "host" else opts.target
        opts.expected = os.path.join(SCRIPT_DIR, "expected_%s.txt" % name)
    return opts


def find_tools(bin_dir, run_bin_dir=None):
    tools = {}
    missing = []
    for name in ("kiln-compile", "kiln-run"):
        d = run_bin_dir if name == "kiln-run" and run_bin_dir else bin_dir
        path = os.path.join(d, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            tools[name] = os.path.abspath(path)
        else:
            missing.append(path)
    return tools, missing


def out(msg=""):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def main(argv):
    opts = parse_args(argv[1:])

    tools, missing = find_tools(opts.bin_dir, opts.run_bin_dir)
    if missing:
        for m in missing:
            sys.stderr.write("run_node_tests.py: error: tool not found or not "
                             "executable: %s\n" % m)
        sys.stderr.write("run_node_tests.py: build kiln first%s, or pass the right "
                         "--bin-dir\n" % (" (aarch64: scripts/build-aarch64.sh)"
                                          if opts.run_bin_dir else ""))
        return 2
    if not os.path.isdir(opts.data_dir):
        sys.stderr.write("run_node_tests.py: error: data dir %s does not exist "
                         "(install the libonnx-testdata package)\n" % opts.data_dir)
        return 2
    try:
        filt = re.compile(opts.filter) if opts.filter else None
    except re.error as e:
        sys.stderr.write("run_node_tests.py: error: bad --filter: %s\n" % e)
        return 2

    expected = None
    if opts.expected and os.path.exists(opts.expected):
        try:
            expected = read_status_file(opts.expected)
        except (OSError, ValueError) as e:
            sys.stderr.write("run_node_tests.py: error: %s\n" % e)
            return 2
    elif opts.expected and not opts.update_expected:
        sys.stderr.write("run_node_tests.py: error: expected file %s does not "
                         "exist (create it with --update-expected)\n" % opts.expected)
        return 2

    all_cases = sorted(
        c for c in os.listdir(opts.data_dir)
        if os.path.isfile(os.path.join(opts.data_dir, c, "model.onnx")))
    cases = [c for c in all_cases if filt is None or filt.search(c)]
    if not cases:
        sys.stderr.write("run_node_tests.py: error: no test cases found in %s%s\n"
                         % (opts.data_dir, " matching the filter" if filt else ""))
        return 2

    if opts.work_dir:
        os.makedirs(opts.work_dir, exist_ok=True)
    opts.work_root = tempfile.mkdtemp(prefix="kiln-conformance.", dir=opts.work_dir)

    out("Running %d ONNX node tests (target %s%s, %d jobs%s) from %s"
        % (len(cases), opts.target,
           ", device %s" % opts.device if opts.device else "", opts.jobs,
           ", kiln-run --threads %d" % opts.threads if opts.threads else "",
           opts.data_dir))

    results = []
    n_pass = 0
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=opts.jobs)
    try:
        futures = [pool.submit(run_case, c, opts, tools) for c in cases]
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            results.append(r)
            if r.passed:
                n_pass += 1
            if r.category == "crash":
                out("CRASH: %s: %s" % (r.case, r.detail))
            elif opts.verbose and not r.passed:
                out("FAIL: %s: %s: %s" % (r.case, r.category, r.detail))
            done = len(results)
            if done % 50 == 0 or done == len(cases):
                out("progress: %d/%d done (%d pass, %d fail)"
                    % (done, len(cases), n_pass, done - n_pass))
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        kill_active()
        shutil.rmtree(opts.work_root, ignore_errors=True)
        sys.stderr.write("run_node_tests.py: interrupted\n")
        return 130
    pool.shutdown(wait=True)
    if not opts.keep_work:
        shutil.rmtree(opts.work_root, ignore_errors=True)
    else:
        out("work files kept in %s" % opts.work_root)

    results.sort(key=lambda r: r.case)
    statuses = {r.case: _status(r) for r in results}
    exit_code = 0

    # Summary by reason.
    by_cat = collections.Counter(r.category for r in results if not r.passed)
    if by_cat:
        out("")
        out("Failures by reason:")
        for cat, n in sorted(by_cat.items(), key=lambda kv: (-kv[1], kv[0])):
            out("  %-16s %d" % (cat, n))

    crashes = [r for r in results if r.category == "crash"]
    if crashes:
        exit_code = 1
        out("")
        out("!" * 72)
        out("%d CASE(S) CRASHED A KILN TOOL:" % len(crashes))
        for r in crashes:
            out("  CRASH %s (%s): %s" % (r.case, r.op, r.detail))
        out("!" * 72)

    if opts.results_out:
        write_status_file(opts.results_out, statuses)
        out("")
        out("results written to %s" % opts.results_out)

    if expected is not None:
        regressions = [r for r in results
                       if expected.get(r.case) == "pass" and not r.passed]
        improvements = [r for r in results
                        if r.passed and r.case in expected
                        and expected[r.case] != "pass"]
        new_cases = [r for r in results if r.case not in expected]
        changed = [r for r in results
                   if not r.passed and r.case in expected
                   and expected[r.case] not in ("pass", "fail not-run",
                                                statuses[r.case])]
        gone = sorted(c for c in expected if c not in all_cases
                      and (filt is None or filt.search(c)))
        out("")
        if regressions:
            out("REGRESSIONS: %d case(s) expected to pass now fail:" % len(regressions))
            for r in regressions:
                out("  REGRESSION %s: %s: %s" % (r.case, r.category, r.detail))
            if not opts.update_expected:
                exit_code = 1
        if improvements:
            out("improvements: %d case(s) now pass; update the expected file with "
                "--update-expected:" % len(improvements))
            for r in improvements[:LIST_LIMIT]:
                out("  %s" % r.case)
            if len(improvements) > LIST_LIMIT:
                out("  ... and %d more" % (len(improvements) - LIST_LIMIT))
        if changed:
            out("note: %d failing case(s) changed failure reason:" % len(changed))
            for r in changed[:LIST_LIMIT]:
                out("  %s: %s -> %s" % (r.case, expected[r.case], statuses[r.case]))
            if len(changed) > LIST_LIMIT:
                out("  ... and %d more" % (len(changed) - LIST_LIMIT))
        if new_cases:
            out("note: %d case(s) are not in %s" % (len(new_cases), opts.expected))
        if gone:
            out("warning: %d case(s) in %s are missing from %s: %s"
                % (len(gone), opts.expected, opts.data_dir, " ".join(gone[:10])
                   + (" ..." if len(gone) > 10 else "")))
        if not (regressions or improvements or changed or new_cases or gone):
            out("results match %s" % opts.expected)

    if opts.update_expected:
        merged = {}
        if expected is not None and filt is not None:
            # A filtered run only updates the cases it ran.
            merged.update({c: s for c, s in expected.items() if c in all_cases})
        merged.update(statuses)
        write_status_file(opts.expected, merged)
        out("updated %s" % opts.expected)

    if opts.doc_out:
        write_doc(opts.doc_out, results, opts, argv)
        out("report written to %s" % opts.doc_out)

    out("")
    out("%d passed, %d failed" % (n_pass, len(results) - n_pass))
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv))

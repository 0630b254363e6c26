# lit configuration for kiln: dialect, importer, pass, target and tool tests.
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "kiln"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = config.kiln_obj_root

# FileCheck, not and count live only in the LLVM tools dir on Debian.
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.kiln_bin_dir, append_path=True)
config.substitutions.append(("%python", config.python3))
config.substitutions.append(("%kiln_src", config.kiln_src_dir))
config.substitutions.append(
    ("%node_tests", "/usr/share/libonnx-testdata/data/node"))
config.substitutions.append(("%kiln_bin", config.kiln_bin_dir))

# ptxas (the CUDA toolkit's assembler) checks the PTX of the cuda targets
# where this machine has one.
import shutil
_ptxas = shutil.which("ptxas") or next(
    (p for p in (os.path.join(os.environ.get("CUDA_HOME", ""), "bin", "ptxas"),
                 "/usr/local/cuda/bin/ptxas") if os.path.isfile(p)), None)
if _ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", _ptxas))

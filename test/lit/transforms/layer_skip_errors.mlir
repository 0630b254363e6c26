// Near misses: the draft must be smaller than the target, and there must be
// a paged forward to cut.
// RUN: not kiln-opt %S/layer_skip.mlir --kiln-llm-paged-kv --kiln-llm-speculative-layer-skip=layers=2 2>&1 | FileCheck %s --check-prefix=ALL
// ALL: layer-skip:2 needs 1 <= N < 2 (the model has 2 layers)
// RUN: not kiln-opt %S/layer_skip.mlir --kiln-llm-speculative-layer-skip=layers=1 2>&1 | FileCheck %s --check-prefix=NOPAGED
// NOPAGED: layer-skip speculation needs the paged forward

//===- FormDispatches.h - Group work into kernels, build the host schedule -===//
#ifndef KILN_COMPILER_DISPATCH_FORMDISPATCHES_H
#define KILN_COMPILER_DISPATCH_FORMDISPATCHES_H

#include "mlir/Pass/Pass.h"

#include <memory>

namespace kiln {

/// Forms dispatch regions in the entry function (a root op plus the
/// elementwise consumers that only it feeds), outlines each into a kernel
/// function (`exec.kernel`) and rewrites the entry function into an `exec`
/// host schedule (`exec.entry`): allocs, dispatches, dims, constants.
std::unique_ptr<mlir::Pass> createFormDispatchesPass();

} // namespace kiln

#endif

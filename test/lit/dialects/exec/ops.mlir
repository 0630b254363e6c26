// RUN: kiln-opt %s | kiln-opt | FileCheck %s

// CHECK-LABEL: func.func @schedule
// CHECK: %[[N:.+]] = exec.dim %{{.+}}, 0 : tensor<?x4xf32>
// CHECK: %[[B:.+]] = exec.alloc(%[[N]]) : tensor<?x4xf32>
// CHECK: exec.dispatch @kernel_0(%{{.+}}) outs(%[[B]] : tensor<?x4xf32>)
// CHECK: exec.reshape
// CHECK: exec.copy
func.func private @kernel_0(%id: index, %count: index, %x: tensor<?x4xf32>, %out: tensor<?x4xf32>) -> tensor<?x4xf32> attributes {exec.kernel} {
  return %x : tensor<?x4xf32>
}
func.func @schedule(%x: tensor<?x4xf32>) -> (tensor<?x4xf32>, tensor<?xf32>, tensor<?x4xf32>) attributes {exec.entry} {
  %n = exec.dim %x, 0 : tensor<?x4xf32>
  %b = exec.alloc(%n) : tensor<?x4xf32>
  %r = exec.dispatch @kernel_0(%x) outs(%b : tensor<?x4xf32>) : (tensor<?x4xf32>) -> tensor<?x4xf32>
  %c4 = arith.constant 4 : index
  %m = arith.muli %n, %c4 : index
  %v = exec.reshape %r(%m) : tensor<?x4xf32> -> tensor<?xf32>
  %c = exec.copy %x : tensor<?x4xf32>
  return %r, %v, %c : tensor<?x4xf32>, tensor<?xf32>, tensor<?x4xf32>
}

// RUN: kiln-opt --split-input-file --verify-diagnostics %s

func.func @alloc_dims(%n: index) -> tensor<?x?xf32> {
  // expected-error @+1 {{expects 2 dynamic dims, got 1}}
  %b = exec.alloc(%n) : tensor<?x?xf32>
  return %b : tensor<?x?xf32>
}

// -----

func.func @dim_range(%x: tensor<4xf32>) -> index {
  // expected-error @+1 {{dim 1 out of range for rank 1}}
  %n = exec.dim %x, 1 : tensor<4xf32>
  return %n : index
}

// -----

func.func @not_a_kernel(%id: index, %count: index, %x: tensor<4xf32>, %o: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}
func.func @dispatch_non_kernel(%x: tensor<4xf32>) -> tensor<4xf32> {
  %b = exec.alloc() : tensor<4xf32>
  // expected-error @+1 {{callee @not_a_kernel is not a kernel}}
  %r = exec.dispatch @not_a_kernel(%x) outs(%b : tensor<4xf32>) : (tensor<4xf32>) -> tensor<4xf32>
  return %r : tensor<4xf32>
}

// -----

func.func @reshape_count(%x: tensor<2x3xf32>) -> tensor<5xf32> {
  // expected-error @+1 {{element counts differ: 6 vs 5}}
  %v = exec.reshape %x() : tensor<2x3xf32> -> tensor<5xf32>
  return %v : tensor<5xf32>
}

// RUN: kiln-opt --split-input-file --kiln-convert-onnx-to-linalg --verify-diagnostics %s | FileCheck %s

// Gather: a generic over the output reading the data with tensor.extract;
// negative indices wrap (+ axis size) and are clamped into range.
// CHECK-LABEL: func.func @gather_axis1
// CHECK-SAME: (%[[D:.+]]: tensor<3x4xf32> {{.*}}, %[[I:.+]]: tensor<2xi64>
// CHECK: %[[E:.+]] = tensor.empty() : tensor<3x2xf32>
// CHECK: %[[C4:.+]] = arith.constant 4 : index
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[I]] : tensor<2xi64>) outs(%[[E]] : tensor<3x2xf32>)
// CHECK: ^bb0(%[[IN:.+]]: i64,
// CHECK: %[[ROW:.+]] = linalg.index 0 : index
// CHECK: %[[IX:.+]] = arith.index_cast %[[IN]] : i64 to index
// CHECK: %[[NEG:.+]] = arith.cmpi slt, %[[IX]]
// CHECK: %[[WRAP:.+]] = arith.addi %[[IX]], %[[C4]]
// CHECK: %[[SEL:.+]] = arith.select %[[NEG]], %[[WRAP]], %[[IX]]
// CHECK: %[[LO:.+]] = arith.maxsi %[[SEL]]
// CHECK: %[[CL:.+]] = arith.minsi %[[LO]]
// CHECK: %[[V:.+]] = tensor.extract %[[D]][%[[ROW]], %[[CL]]] : tensor<3x4xf32>
// CHECK: linalg.yield %[[V]] : f32
func.func @gather_axis1(%d: tensor<3x4xf32>, %i: tensor<2xi64>) -> tensor<3x2xf32> {
  %0 = onnx.Gather %d, %i {axis = 1 : si64} : (tensor<3x4xf32>, tensor<2xi64>) -> tensor<3x2xf32>
  return %0 : tensor<3x2xf32>
}

// -----

// CHECK-LABEL: func.func @gather_elements
// CHECK-SAME: (%[[D:.+]]: tensor<3x3xf32> {{.*}}, %[[I:.+]]: tensor<2x3xi32>
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[I]] : tensor<2x3xi32>)
// CHECK: arith.index_cast %{{.+}} : i32 to index
// CHECK: %[[COL:.+]] = linalg.index 1 : index
// CHECK: tensor.extract %[[D]][%{{.+}}, %[[COL]]] : tensor<3x3xf32>
func.func @gather_elements(%d: tensor<3x3xf32>, %i: tensor<2x3xi32>) -> tensor<2x3xf32> {
  %0 = onnx.GatherElements %d, %i : (tensor<3x3xf32>, tensor<2x3xi32>) -> tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

// -----

// GatherND with batch_dims = 1: the batch coordinate indexes both tensors.
// CHECK-LABEL: func.func @gathernd_batch
// CHECK-SAME: (%[[D:.+]]: tensor<2x2x2xi32> {{.*}}, %[[I:.+]]: tensor<2x1xi64>
// CHECK: linalg.generic
// CHECK-SAME: outs(%{{.+}} : tensor<2x2xi32>)
// CHECK: %[[B:.+]] = linalg.index 0 : index
// CHECK: tensor.extract %[[I]][%[[B]], %{{.+}}] : tensor<2x1xi64>
// CHECK: %[[T:.+]] = linalg.index 1 : index
// CHECK: tensor.extract %[[D]][%[[B]], %{{.+}}, %[[T]]] : tensor<2x2x2xi32>
func.func @gathernd_batch(%d: tensor<2x2x2xi32>, %i: tensor<2x1xi64>) -> tensor<2x2xi32> {
  %0 = onnx.GatherND %d, %i {batch_dims = 1 : si64} : (tensor<2x2x2xi32>, tensor<2x1xi64>) -> tensor<2x2xi32>
  return %0 : tensor<2x2xi32>
}

// -----

// Scatters: serial loops over the updates, starting from the data.
// CHECK-LABEL: func.func @scatter_elements_add
// CHECK-SAME: (%[[D:.+]]: tensor<1x5xf32> {{.*}}, %[[I:.+]]: tensor<1x2xi64> {{.*}}, %[[U:.+]]: tensor<1x2xf32>
// CHECK: %[[R:.+]] = scf.for %[[A:.+]] = {{.*}} iter_args(%[[ACC0:.+]] = %[[D]]) -> (tensor<1x5xf32>)
// CHECK: scf.for %[[B:.+]] = {{.*}} iter_args(%[[ACC:.+]] = %[[ACC0]]) -> (tensor<1x5xf32>)
// CHECK: %[[UPD:.+]] = tensor.extract %[[U]][%[[A]], %[[B]]]
// CHECK: tensor.extract %[[I]][%[[A]], %[[B]]]
// CHECK: %[[POS:.+]] = arith.minsi
// CHECK: %[[OLD:.+]] = tensor.extract %[[ACC]][%[[A]], %[[POS]]]
// CHECK: %[[SUM:.+]] = arith.addf %[[OLD]], %[[UPD]] : f32
// CHECK: %[[INS:.+]] = tensor.insert %[[SUM]] into %[[ACC]][%[[A]], %[[POS]]]
// CHECK: scf.yield %[[INS]]
// CHECK: return %[[R]]
func.func @scatter_elements_add(%d: tensor<1x5xf32>, %i: tensor<1x2xi64>, %u: tensor<1x2xf32>) -> tensor<1x5xf32> {
  %0 = onnx.ScatterElements %d, %i, %u {axis = 1 : si64, reduction = "add"} : (tensor<1x5xf32>, tensor<1x2xi64>, tensor<1x2xf32>) -> tensor<1x5xf32>
  return %0 : tensor<1x5xf32>
}

// -----

// Unsigned data: max uses the unsigned compare.
// CHECK-LABEL: func.func @scatter_elements_max_unsigned
// CHECK: scf.for
// CHECK: arith.maxui %{{.+}}, %{{.+}} : i8
// CHECK-NOT: arith.maxsi %{{.+}} : i8
func.func @scatter_elements_max_unsigned(%d: tensor<4xui8>, %i: tensor<2xi64>, %u: tensor<2xui8>) -> tensor<4xui8> {
  %0 = onnx.ScatterElements %d, %i, %u {reduction = "max"} : (tensor<4xui8>, tensor<2xi64>, tensor<2xui8>) -> tensor<4xui8>
  return %0 : tensor<4xui8>
}

// -----

// CHECK-LABEL: func.func @scatternd_mul
// CHECK-SAME: (%[[D:.+]]: tensor<4x4xf32> {{.*}}, %[[I:.+]]: tensor<2x1xi64> {{.*}}, %[[U:.+]]: tensor<2x4xf32>
// CHECK: scf.for %[[A:.+]] = {{.*}} iter_args(%{{.+}} = %[[D]])
// CHECK: scf.for %[[B:.+]] = {{.*}} iter_args(%[[ACC:.+]] = %{{.+}})
// CHECK: tensor.extract %[[U]][%[[A]], %[[B]]]
// CHECK: tensor.extract %[[I]][%[[A]], %{{.+}}] : tensor<2x1xi64>
// CHECK: %[[ROW:.+]] = arith.minsi
// CHECK: tensor.extract %[[ACC]][%[[ROW]], %[[B]]]
// CHECK: arith.mulf
// CHECK: tensor.insert %{{.+}} into %[[ACC]][%[[ROW]], %[[B]]]
func.func @scatternd_mul(%d: tensor<4x4xf32>, %i: tensor<2x1xi64>, %u: tensor<2x4xf32>) -> tensor<4x4xf32> {
  %0 = onnx.ScatterND %d, %i, %u {reduction = "mul"} : (tensor<4x4xf32>, tensor<2x1xi64>, tensor<2x4xf32>) -> tensor<4x4xf32>
  return %0 : tensor<4x4xf32>
}

// -----

// OneHot: depth from the result type, on/off values read with tensor.extract.
// CHECK-LABEL: func.func @onehot
// CHECK-SAME: (%[[I:.+]]: tensor<3xi64> {{.*}}, %{{.+}}: tensor<f32> {{.*}}, %[[V:.+]]: tensor<2xf32>
// CHECK: %[[OFF:.+]] = tensor.extract %[[V]][%{{.+}}] : tensor<2xf32>
// CHECK: %[[ON:.+]] = tensor.extract %[[V]][%{{.+}}] : tensor<2xf32>
// CHECK: linalg.generic
// CHECK-SAME: ins(%[[I]] : tensor<3xi64>) outs(%{{.+}} : tensor<3x10xf32>)
// CHECK: arith.constant 10 : i64
// CHECK: %[[POS:.+]] = linalg.index 1 : index
// CHECK: %[[HIT:.+]] = arith.cmpi eq
// CHECK: %[[R:.+]] = arith.select %[[HIT]], %[[ON]], %[[OFF]] : f32
// CHECK: linalg.yield %[[R]]
func.func @onehot(%i: tensor<3xi64>, %depth: tensor<f32>, %v: tensor<2xf32>) -> tensor<3x10xf32> {
  %0 = onnx.OneHot %i, %depth, %v {axis = 1 : si64} : (tensor<3xi64>, tensor<f32>, tensor<2xf32>) -> tensor<3x10xf32>
  return %0 : tensor<3x10xf32>
}

// -----

// TopK: k = 3 from the result type; a selection loop per row.
// CHECK-LABEL: func.func @topk_smallest
// CHECK-SAME: (%[[X:.+]]: tensor<3x4xf32>
// CHECK: %[[V0:.+]] = linalg.fill {{.*}} -> tensor<3x3xf32>
// CHECK: %[[I0:.+]] = linalg.fill {{.*}} -> tensor<3x3xi64>
// CHECK: %[[R:.+]]:2 = scf.for %[[ROW:.+]] = {{.*}} iter_args(%{{.+}} = %[[V0]], %{{.+}} = %[[I0]])
// CHECK: scf.for %[[K:.+]] = %{{.+}} to %c3
// CHECK: scf.for %[[J:.+]] = %{{.+}} to %c4
// CHECK: tensor.extract %[[X]][%[[ROW]], %[[J]]]
// CHECK: arith.cmpf olt
// CHECK-NOT: arith.cmpf ogt
// CHECK: tensor.insert %{{.+}} into %{{.+}}[%[[ROW]], %[[K]]] : tensor<3x3xf32>
// CHECK: arith.index_cast %{{.+}} : index to i64
// CHECK: tensor.insert %{{.+}} into %{{.+}}[%[[ROW]], %[[K]]] : tensor<3x3xi64>
// CHECK: return %[[R]]#0, %[[R]]#1
func.func @topk_smallest(%x: tensor<3x4xf32>, %k: tensor<1xi64>) -> (tensor<3x3xf32>, tensor<3x3xi64>) {
  %v, %i = onnx.TopK %x, %k {axis = 1 : si64, largest = 0 : si64} : (tensor<3x4xf32>, tensor<1xi64>) -> (tensor<3x3xf32>, tensor<3x3xi64>)
  return %v, %i : tensor<3x3xf32>, tensor<3x3xi64>
}

// -----

// Compress: selected rows are copied to the next free output row.
// CHECK-LABEL: func.func @compress
// CHECK-SAME: (%[[X:.+]]: tensor<3x2xf32> {{.*}}, %[[C:.+]]: tensor<3xi1>
// CHECK: scf.for %[[J:.+]] = {{.*}} iter_args(%[[OUT:.+]] = %{{.+}}, %[[N:.+]] = %{{.+}}) -> (tensor<2x2xf32>, index)
// CHECK: tensor.extract %[[C]][%[[J]]]
// CHECK: scf.if
// CHECK: %[[S:.+]] = tensor.extract_slice %[[X]][%[[J]], 0] [1, 2] [1, 1]
// CHECK: tensor.insert_slice %[[S]] into %[[OUT]][%[[N]], 0] [1, 2] [1, 1]
func.func @compress(%x: tensor<3x2xf32>, %c: tensor<3xi1>) -> tensor<2x2xf32> {
  %0 = onnx.Compress %x, %c {axis = 0 : si64} : (tensor<3x2xf32>, tensor<3xi1>) -> tensor<2x2xf32>
  return %0 : tensor<2x2xf32>
}

// -----

// CHECK-LABEL: func.func @nonzero
// CHECK: scf.for
// CHECK: scf.for
// CHECK: scf.if
// CHECK: tensor.insert %{{.+}} into %{{.+}} : tensor<2x3xi64>
func.func @nonzero(%x: tensor<2x2xi1>) -> tensor<2x3xi64> {
  %0 = onnx.NonZero %x : (tensor<2x2xi1>) -> tensor<2x3xi64>
  return %0 : tensor<2x3xi64>
}

// -----

// CHECK-LABEL: func.func @unique
// CHECK: %[[R:.+]]:4 = scf.for {{.*}} -> (tensor<4xf32>, tensor<4xi64>, tensor<6xi64>, tensor<4xi64>)
// CHECK: return %[[R]]#0, %[[R]]#1, %[[R]]#2, %[[R]]#3
func.func @unique(%x: tensor<6xf32>) -> (tensor<4xf32>, tensor<4xi64>, tensor<6xi64>, tensor<4xi64>) {
  %y, %ind, %inv, %cnt = onnx.Unique %x {sorted = 0 : si64} : (tensor<6xf32>) -> (tensor<4xf32>, tensor<4xi64>, tensor<6xi64>, tensor<4xi64>)
  return %y, %ind, %inv, %cnt : tensor<4xf32>, tensor<4xi64>, tensor<6xi64>, tensor<4xi64>
}

// -----

// Near misses: k not static in the result type; unknown reduction.
// CHECK-NOT: func.func @topk_dynamic_k
func.func @topk_dynamic_k(%x: tensor<3x4xf32>, %k: tensor<1xi64>) -> (tensor<3x?xf32>, tensor<3x?xi64>) {
  // expected-error @+1 {{failed to legalize operation 'onnx.TopK'}}
  %v, %i = onnx.TopK %x, %k {axis = 1 : si64} : (tensor<3x4xf32>, tensor<1xi64>) -> (tensor<3x?xf32>, tensor<3x?xi64>)
  return %v, %i : tensor<3x?xf32>, tensor<3x?xi64>
}

// -----

func.func @scatter_bad_reduction(%d: tensor<4xf32>, %i: tensor<2xi64>, %u: tensor<2xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{failed to legalize operation 'onnx.ScatterElements'}}
  %0 = onnx.ScatterElements %d, %i, %u {reduction = "xor"} : (tensor<4xf32>, tensor<2xi64>, tensor<2xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// OneHot whose depth is not static in the result type is not lowered.
func.func @onehot_dynamic_depth(%i: tensor<3xi64>, %depth: tensor<f32>, %v: tensor<2xf32>) -> tensor<3x?xf32> {
  // expected-error @+1 {{failed to legalize operation 'onnx.OneHot'}}
  %0 = onnx.OneHot %i, %depth, %v {axis = 1 : si64} : (tensor<3xi64>, tensor<f32>, tensor<2xf32>) -> tensor<3x?xf32>
  return %0 : tensor<3x?xf32>
}
// CHECK-NOT: func.func @onehot_dynamic_depth

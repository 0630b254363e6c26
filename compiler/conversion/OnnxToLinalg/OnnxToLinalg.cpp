//===- OnnxToLinalg.cpp - The onnx -> linalg conversion pass --------------===//
#include "compiler/conversion/OnnxToLinalg/OnnxToLinalg.h"

#include "compiler/conversion/OnnxToLinalg/Utils.h"
#include "compiler/Passes.h"
#include "dialects/onnx/IR/OnnxDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Func/Transforms/FuncConversions.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/DialectResourceBlobManager.h"

using namespace mlir;

namespace kiln {
#define GEN_PASS_DEF_CONVERTONNXTOLINALGPASS
#include "compiler/Passes.h.inc"

OnnxTypeConverter::OnnxTypeConverter() {
  addConversion([](Type t) { return t; });
  addConversion([](IntegerType t) -> Type {
    if (t.isSignless())
      return t;
    return IntegerType::get(t.getContext(), t.getWidth());
  });
  addConversion([this](RankedTensorType t) -> Type {
    return RankedTensorType::get(t.getShape(),
                                 convertType(t.getElementType()));
  });
  auto cast = [](OpBuilder &b, Type type, ValueRange inputs,
                 Location loc) -> Value {
    return UnrealizedConversionCastOp::create(b, loc, type, inputs)
        .getResult(0);
  };
  addSourceMaterialization(cast);
  addTargetMaterialization(cast);
}

namespace {

/// Names the runtime dtype of a tensor type ("f32", "u8", ...).
std::string dtypeName(Type t) {
  Type e = getElementTypeOrSelf(t);
  if (e.isF32()) return "f32";
  if (e.isF64()) return "f64";
  if (e.isF16()) return "f16";
  if (e.isBF16()) return "bf16";
  if (e.isInteger(1)) return "bool";
  if (auto i = dyn_cast<IntegerType>(e))
    return (i.isUnsigned() ? "u" : "i") + std::to_string(i.getWidth());
  return "?";
}

struct ConstantLowering : OpConversionPattern<onnx::ConstantOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(onnx::ConstantOp op, OpAdaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto type = resultType(*getTypeConverter(), op);
    ElementsAttr value = op.getValueAttr();
    if (!type || !value)
      return rewriter.notifyMatchFailure(op, "only `value` constants");
    TypedAttr attr;
    if (auto dense = dyn_cast<DenseElementsAttr>(value))
      attr = dense.getType() == type ? dense : dense.bitcast(type.getElementType());
    else if (auto res = dyn_cast<DenseResourceElementsAttr>(value))
      attr = DenseResourceElementsAttr::get(type, res.getRawHandle());
    else
      return rewriter.notifyMatchFailure(op, "unsupported constant kind");
    rewriter.replaceOpWithNewOp<arith::ConstantOp>(op, type, attr);
    return success();
  }
};

struct ConvertOnnxToLinalgPass
    : impl::ConvertOnnxToLinalgPassBase<ConvertOnnxToLinalgPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    // Record the runtime dtypes before unsigned types become signless.
    module.walk([&](func::FuncOp fn) {
      auto fnType = fn.getFunctionType();
      for (unsigned i = 0; i < fnType.getNumInputs(); ++i)
        if (!fn.getArgAttr(i, "exec.dtype"))
          fn.setArgAttr(i, "exec.dtype",
                        StringAttr::get(ctx, dtypeName(fnType.getInput(i))));
      for (unsigned i = 0; i < fnType.getNumResults(); ++i)
        if (!fn.getResultAttr(i, "exec.dtype"))
          fn.setResultAttr(i, "exec.dtype",
                           StringAttr::get(ctx, dtypeName(fnType.getResult(i))));
    });

    OnnxTypeConverter converter;
    RewritePatternSet patterns(ctx);
    populateOnnxToLinalgPatterns(patterns, converter);
    populateFunctionOpInterfaceTypeConversionPattern<func::FuncOp>(patterns,
                                                                   converter);
    populateReturnOpTypeConversionPattern(patterns, converter);

    ConversionTarget target(*ctx);
    target.addIllegalDialect<onnx::ONNXDialect>();
    // `none` placeholders stay until their users are gone.
    target.addLegalOp<onnx::NoValueOp>();
    target.addLegalDialect<arith::ArithDialect, linalg::LinalgDialect,
                           tensor::TensorDialect, math::MathDialect,
                           scf::SCFDialect, bufferization::BufferizationDialect>();
    target.addDynamicallyLegalOp<func::FuncOp>([&](func::FuncOp op) {
      return converter.isSignatureLegal(op.getFunctionType()) &&
             converter.isLegal(&op.getBody());
    });
    target.addDynamicallyLegalOp<func::ReturnOp>(
        [&](func::ReturnOp op) { return converter.isLegal(op); });
    if (failed(applyPartialConversion(module, target, std::move(patterns)))) {
      signalPassFailure();
      return;
    }
    module.walk([](onnx::NoValueOp op) {
      if (op->use_empty())
        op->erase();
    });
    // Report the first op left unlowered in one line.
    WalkResult r = module.walk([&](Operation *op) {
      if (isa<onnx::ONNXDialect>(op->getDialect())) {
        op->emitError("unsupported op '")
            << op->getName().stripDialect() << "' for lowering";
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (r.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace

void populateOnnxToLinalgPatterns(RewritePatternSet &patterns,
                                  const TypeConverter &converter) {
  patterns.add<ConstantLowering>(converter, patterns.getContext());
  populateOnnxElementwisePatterns(patterns, converter);
  populateOnnxTensorPatterns(patterns, converter);
  populateOnnxMatmulPatterns(patterns, converter);
  populateOnnxReductionPatterns(patterns, converter);
  populateOnnxConvPoolPatterns(patterns, converter);
  populateOnnxIndexingPatterns(patterns, converter);
  populateOnnxNormalizationPatterns(patterns, converter);
  populateOnnxMiscPatterns(patterns, converter);
  populateOnnxRecurrentPatterns(patterns, converter);
  populateOnnxSignalPatterns(patterns, converter);
}


} // namespace kiln

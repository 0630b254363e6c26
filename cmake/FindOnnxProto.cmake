# Provides the `onnx_proto` target (the ONNX protobuf messages) to the runtime.
# Debian's ONNX CMake package when it is there; otherwise, as in the aarch64
# cross build (whose libonnx-dev cannot be installed next to the host's), the
# library and the shared headers found directly.
find_package(ONNX QUIET)
if(NOT TARGET onnx_proto)
  find_library(KILN_ONNX_PROTO_LIBRARY NAMES onnx_proto libonnx_proto.so.1 REQUIRED)
  find_path(KILN_ONNX_INCLUDE onnx/onnx_pb.h REQUIRED)
  add_library(onnx_proto UNKNOWN IMPORTED)
  set_target_properties(onnx_proto PROPERTIES
    IMPORTED_LOCATION ${KILN_ONNX_PROTO_LIBRARY}
    INTERFACE_COMPILE_DEFINITIONS "ONNX_NAMESPACE=onnx;ONNX_ML=1"
    INTERFACE_INCLUDE_DIRECTORIES ${KILN_ONNX_INCLUDE}
    INTERFACE_LINK_LIBRARIES protobuf::libprotobuf)
endif()

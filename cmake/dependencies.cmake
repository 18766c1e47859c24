# System packages, found through their CMake configs (Debian 12 / Ubuntu 24.04).
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Protobuf CONFIG QUIET)
if(NOT Protobuf_FOUND)
  find_package(Protobuf REQUIRED)
endif()
find_package(gRPC CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(GTest CONFIG REQUIRED)
find_package(benchmark CONFIG REQUIRED)
# The OpenMP build of OpenBLAS shares sympow's OpenMP thread pool; the pthread build's own
# spinning threads fight OpenMP's for the cores (3x slower prefill measured on 2 cores).
find_package(OpenBLAS CONFIG REQUIRED
  PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp/cmake/openblas NO_DEFAULT_PATH)
find_package(ZLIB REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)

# OpenBLAS's config exports variables, not a target: wrap them in one.
add_library(sympow_openblas INTERFACE)
target_include_directories(sympow_openblas SYSTEM INTERFACE ${OpenBLAS_INCLUDE_DIRS})
target_link_libraries(sympow_openblas INTERFACE ${OpenBLAS_LIBRARIES})

find_package(Python3 COMPONENTS Interpreter REQUIRED)

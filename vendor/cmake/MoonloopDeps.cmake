# Finds moonloop's dependencies with pkg-config (Debian package names in vendor/packages.txt)
# and exposes them as one interface target, ml::deps.
find_package(PkgConfig REQUIRED)
set(_ml_missing "")
foreach(_mod lua5.4 libuv libcurl libcjson sqlite3 libedit)
  string(MAKE_C_IDENTIFIER "${_mod}" _id)
  pkg_check_modules(ML_${_id} QUIET IMPORTED_TARGET ${_mod})
  if(NOT ML_${_id}_FOUND)
    list(APPEND _ml_missing ${_mod})
  endif()
endforeach()
if(_ml_missing)
  message(FATAL_ERROR "moonloop: missing pkg-config modules: ${_ml_missing}.\n"
          "Run 'make deps' (installs the Debian packages listed in vendor/packages.txt).")
endif()
add_library(ml_deps INTERFACE)
target_link_libraries(ml_deps INTERFACE
  PkgConfig::ML_lua5_4 PkgConfig::ML_libuv PkgConfig::ML_libcurl
  PkgConfig::ML_libcjson PkgConfig::ML_sqlite3 PkgConfig::ML_libedit)
add_library(ml::deps ALIAS ml_deps)

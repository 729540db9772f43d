# SPDX-License-Identifier: Apache-2.0
# WP_SANITIZE: comma list passed to -fsanitize (default address,undefined in Debug builds).
if(CMAKE_BUILD_TYPE STREQUAL "Debug")
    set(WP_SANITIZE "address,undefined" CACHE STRING "sanitizers for Debug builds")
else()
    set(WP_SANITIZE "" CACHE STRING "sanitizers")
endif()
if(WP_SANITIZE)
    add_compile_options(-fsanitize=${WP_SANITIZE} -fno-sanitize-recover=undefined
        -fno-omit-frame-pointer)
    add_link_options(-fsanitize=${WP_SANITIZE})
endif()

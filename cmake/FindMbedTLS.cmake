# SPDX-License-Identifier: Apache-2.0
# Find mbedTLS 2.28: Debian 12 ships no pkg-config file, so look for headers and libraries.
find_path(MBEDTLS_INCLUDE_DIR mbedtls/ssl.h)
find_library(MBEDTLS_LIBRARY mbedtls)
find_library(MBEDX509_LIBRARY mbedx509)
find_library(MBEDCRYPTO_LIBRARY mbedcrypto)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(MbedTLS DEFAULT_MSG
    MBEDTLS_INCLUDE_DIR MBEDTLS_LIBRARY MBEDX509_LIBRARY MBEDCRYPTO_LIBRARY)
if(MbedTLS_FOUND AND NOT TARGET MbedTLS::mbedtls)
    add_library(MbedTLS::mbedcrypto UNKNOWN IMPORTED)
    set_target_properties(MbedTLS::mbedcrypto PROPERTIES
        IMPORTED_LOCATION ${MBEDCRYPTO_LIBRARY}
        INTERFACE_INCLUDE_DIRECTORIES ${MBEDTLS_INCLUDE_DIR})
    add_library(MbedTLS::mbedx509 UNKNOWN IMPORTED)
    set_target_properties(MbedTLS::mbedx509 PROPERTIES
        IMPORTED_LOCATION ${MBEDX509_LIBRARY}
        INTERFACE_LINK_LIBRARIES MbedTLS::mbedcrypto)
    add_library(MbedTLS::mbedtls UNKNOWN IMPORTED)
    set_target_properties(MbedTLS::mbedtls PROPERTIES
        IMPORTED_LOCATION ${MBEDTLS_LIBRARY}
        INTERFACE_LINK_LIBRARIES MbedTLS::mbedx509)
endif()

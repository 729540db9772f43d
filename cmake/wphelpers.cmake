# SPDX-License-Identifier: Apache-2.0
# wp_existing(VAR file...): the files that exist, so modules land one commit at a time.
function(wp_existing var)
    set(out "")
    foreach(f ${ARGN})
        if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${f})
            list(APPEND out ${f})
        endif()
    endforeach()
    set(${var} ${out} PARENT_SCOPE)
endfunction()

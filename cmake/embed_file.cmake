# rt_embed_file(<target> <symbol> <file>): compiles <file> into the C
# array `const char <symbol>[]` (NUL-terminated) and `const size_t
# <symbol>_len`, so a daemon serves the document the repository holds (an
# OpenAPI document, a page's template) without reading any file. The
# target declares the two in a header of its own.
function(rt_embed_file target symbol file)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/embed_${symbol}.c)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DIN=${file} -DOUT=${out} -DSYMBOL=${symbol}
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_file_gen.cmake
    DEPENDS ${file} ${PROJECT_SOURCE_DIR}/cmake/embed_file_gen.cmake
    COMMENT "embedding ${file}"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
endfunction()

# rt_embed_sql(<target> <schema> <dir>): compiles the numbered migration files
# <dir>/NNN_*.sql into a C array the binary carries, so a daemon (and
# retainctl) can migrate its schema with no files installed beside it.
# The generated file defines `const rt_migration_set_t rt_migrations_<schema>`.
function(rt_embed_sql target schema dir)
  file(GLOB files CONFIGURE_DEPENDS ${dir}/[0-9][0-9][0-9]_*.sql)
  list(SORT files)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/migrations_${schema}.c)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DSCHEMA=${schema} -DOUT=${out} "-DFILES=${files}"
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_sql_gen.cmake
    DEPENDS ${files} ${PROJECT_SOURCE_DIR}/cmake/embed_sql_gen.cmake
    COMMENT "embedding ${schema} migrations"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
endfunction()

# Tests that are scripts rather than cmocka programs; included by
# tests/CMakeLists.txt.

# The deployment files, checked without a container engine.
add_test(NAME deploy.compose
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/deploy/test_compose.sh
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(deploy.compose PROPERTIES LABELS deploy TIMEOUT 120)

# The Python outside-producer example against a real busd and PostgreSQL.
add_test(NAME e2e.python_client
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_python_client.sh ${CMAKE_BINARY_DIR}/bin
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(e2e.python_client PROPERTIES LABELS e2e TIMEOUT 300 RUN_SERIAL TRUE)

# The parsers under libFuzzer for a few seconds each (a clang build of its
# own, kept inside this build's folder): each signed target must get inputs
# past the signature into its parser, each _sig target must meet wrong
# signatures.
add_test(NAME fuzz.parsers
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run --build ${CMAKE_BINARY_DIR}/clang-fuzz 6
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(fuzz.parsers PROPERTIES LABELS fuzz TIMEOUT 900 RUN_SERIAL TRUE)

# deploy/local/run on a copy of itself: a taken port stops it before the
# build; it says when a daemon stops and starts being ready (on this
# build's binaries, with its own PostgreSQL taken away and back).
add_test(NAME deploy.local_run
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/deploy/test_local_run.sh ${CMAKE_BINARY_DIR}/bin
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(deploy.local_run PROPERTIES LABELS deploy TIMEOUT 300 RUN_SERIAL TRUE)

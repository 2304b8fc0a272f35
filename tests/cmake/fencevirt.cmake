# fence_xvm / fence_virt compatibility: codec golden vector and refusals, replay memory, duplicate history, config.
add_executable(unit_fencevirt unit/fencevirt_test.cpp)
target_link_libraries(unit_fencevirt PRIVATE proto_fencevirt fenced_fencevirt fenced_runtime vguard_test_main
                      vguard_warnings)
target_compile_definitions(unit_fencevirt PRIVATE VG_TEST_DATA="${VG_TEST_DATA}")
gtest_discover_tests(unit_fencevirt PROPERTIES LABELS unit)

# A small fence_xvm/fence_virt peer for the integration test: signs and sends requests (multicast, TCP, serial),
# acts as the TCP-callback listener, and re-sends captured packets byte for byte (replay).
add_executable(xvm_peer integration/xvm_peer.cpp)
target_link_libraries(xvm_peer PRIVATE proto_fencevirt vguard_warnings)

add_test(NAME integration.xvm_server COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/xvm_server.sh)
set_tests_properties(integration.xvm_server PROPERTIES LABELS integration
                     ENVIRONMENT "VG_BIN=${CMAKE_BINARY_DIR}/bin;VG_SRC=${CMAKE_SOURCE_DIR}"
                     SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE)

add_executable(component_daemon component/daemon_test.cpp)
target_link_libraries(component_daemon PRIVATE fenced_runtime fenced_libvirt vguard_test_fakes vguard_client
                      vguard_audit vguard_test_main vguard_warnings)
target_compile_definitions(component_daemon PRIVATE VG_TEST_DATA="${VG_TEST_DATA}")
gtest_discover_tests(component_daemon PROPERTIES LABELS component)

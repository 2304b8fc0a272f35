add_executable(unit_fenced unit/engine_test.cpp unit/config_test.cpp)
target_link_libraries(unit_fenced PRIVATE fenced_core fenced_runtime vguard_test_main vguard_warnings)
target_compile_definitions(unit_fenced PRIVATE VG_TEST_DATA="${VG_TEST_DATA}")
gtest_discover_tests(unit_fenced PROPERTIES LABELS unit)

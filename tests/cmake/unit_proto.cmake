add_executable(unit_proto unit/message_test.cpp unit/replay_test.cpp unit/base_test.cpp)
target_link_libraries(unit_proto PRIVATE vguard_wire vguard_test_main vguard_warnings)
target_compile_definitions(unit_proto PRIVATE VG_TEST_DATA="${VG_TEST_DATA}")
gtest_discover_tests(unit_proto PROPERTIES LABELS unit)

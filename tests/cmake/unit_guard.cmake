add_executable(unit_guard unit/guard_test.cpp)
target_link_libraries(unit_guard PRIVATE guard_lib vguard_test_main vguard_warnings)
gtest_discover_tests(unit_guard PROPERTIES LABELS unit)

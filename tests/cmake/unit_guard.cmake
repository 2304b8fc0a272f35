add_executable(unit_guard unit/guard_test.cpp)
target_link_libraries(unit_guard PRIVATE guard_lib pugixml::pugixml Boost::program_options vguard_test_main vguard_warnings)
# The program itself runs too (config file, environment, stdin, socket).
target_compile_definitions(unit_guard PRIVATE VGUARD_HOOK_PATH="$<TARGET_FILE:vguard-hook>")
add_dependencies(unit_guard vguard-hook)
gtest_discover_tests(unit_guard PROPERTIES LABELS unit)

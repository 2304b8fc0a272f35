# Forensic log format (proto/audit), its file writer (fenced/adapters/audit_file) and vguardctl (ctl/).
# Paths are relative to this file so that it also works when included from another project.
set(VG_AUDIT_ROOT ${CMAKE_CURRENT_LIST_DIR}/../..)
set(VG_AUDIT_TESTS ${CMAKE_CURRENT_LIST_DIR}/..)

add_executable(unit_audit ${VG_AUDIT_TESTS}/unit/audit_test.cpp ${VG_AUDIT_TESTS}/unit/audit_file_test.cpp)
if(TARGET fenced_audit_file)
  target_link_libraries(unit_audit PRIVATE fenced_audit_file)
else()
  target_sources(unit_audit PRIVATE ${VG_AUDIT_ROOT}/fenced/adapters/audit_file.cpp)
endif()
target_include_directories(unit_audit PRIVATE ${VG_AUDIT_ROOT}/fenced/adapters)
target_link_libraries(unit_audit PRIVATE vguard_audit vguard_wire vguard_test_main vguard_warnings)
target_compile_definitions(unit_audit PRIVATE VG_TEST_DATA="${VG_TEST_DATA}")
gtest_discover_tests(unit_audit PROPERTIES LABELS unit)

add_executable(unit_ctl ${VG_AUDIT_TESTS}/unit/ctl_test.cpp)
target_link_libraries(unit_ctl PRIVATE ctl_lib vguard_test_main vguard_warnings)
target_compile_definitions(unit_ctl PRIVATE VG_TEST_DATA="${VG_TEST_DATA}" VGUARDCTL_PATH="$<TARGET_FILE:vguardctl>")
add_dependencies(unit_ctl vguardctl)
gtest_discover_tests(unit_ctl PROPERTIES LABELS unit)

# Cluster engine scenario suites; each is its own executable over the shared harness (unit/cluster_harness.h).
foreach(suite cluster_engine cluster_views cluster_sync cluster_handover cluster_evidence)
  add_executable(unit_${suite} unit/${suite}_test.cpp)
  target_link_libraries(unit_${suite} PRIVATE fenced_core vguard_fake_bus vguard_test_main vguard_warnings)
  gtest_discover_tests(unit_${suite} PROPERTIES LABELS unit)
endforeach()

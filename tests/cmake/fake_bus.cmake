# Bus port: the in-process CPG simulation (FakeBusHub) and its unit test.
# (Included from tests/CMakeLists.txt: CMAKE_CURRENT_SOURCE_DIR is tests/.)
add_library(vguard_fake_bus STATIC ${CMAKE_CURRENT_SOURCE_DIR}/fakes/fake_bus.cpp)
target_include_directories(vguard_fake_bus PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/fakes)
target_link_libraries(vguard_fake_bus PUBLIC fenced_ports vguard_base PRIVATE vguard_warnings)

add_executable(unit_fake_bus ${CMAKE_CURRENT_SOURCE_DIR}/unit/fake_bus_test.cpp)
target_link_libraries(unit_fake_bus PRIVATE vguard_fake_bus vguard_test_main vguard_warnings)
gtest_discover_tests(unit_fake_bus PROPERTIES LABELS unit)

# bench/scale_sim.cpp: the in-process scale figure (not a test; run bench/scale.sh).
add_executable(bench_scale ${CMAKE_SOURCE_DIR}/bench/scale_sim.cpp)
target_link_libraries(bench_scale PRIVATE fenced_core vguard_fake_bus vguard_warnings)

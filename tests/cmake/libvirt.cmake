# Hypervisor port: the in-memory fake, its unit test, and the libvirt adapter against the test driver.
# (Included from tests/CMakeLists.txt: CMAKE_CURRENT_SOURCE_DIR is tests/.)
add_library(vguard_test_fakes STATIC ${CMAKE_CURRENT_SOURCE_DIR}/fakes/fake_hypervisor.cpp)
target_include_directories(vguard_test_fakes PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/fakes)
target_link_libraries(vguard_test_fakes PUBLIC fenced_ports vguard_base vguard_wire PRIVATE vguard_warnings)

add_executable(unit_fakes ${CMAKE_CURRENT_SOURCE_DIR}/unit/fake_hypervisor_test.cpp)
target_link_libraries(unit_fakes PRIVATE vguard_test_fakes vguard_test_main vguard_warnings)
gtest_discover_tests(unit_fakes PROPERTIES LABELS unit)

add_executable(component_libvirt ${CMAKE_CURRENT_SOURCE_DIR}/component/libvirt_hypervisor_test.cpp)
target_link_libraries(component_libvirt PRIVATE fenced_libvirt vguard_test_main PkgConfig::LIBVIRT Threads::Threads
                      vguard_warnings)
target_compile_definitions(component_libvirt PRIVATE VG_TEST_DATA="${VG_TEST_DATA}")
gtest_discover_tests(component_libvirt PROPERTIES LABELS component)

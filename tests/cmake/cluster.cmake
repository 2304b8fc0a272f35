# Corosync cluster tests: a real 3-node corosync (knet) in network namespaces, driven by cpg_probe (a CpgBus
# client). The script exits 77 (skip) without root, ip/unshare or corosync.
# (Included from tests/CMakeLists.txt: CMAKE_CURRENT_SOURCE_DIR is tests/.)
add_executable(cpg_probe ${CMAKE_CURRENT_SOURCE_DIR}/integration/cpg_probe.cpp)
target_link_libraries(cpg_probe PRIVATE fenced_cpg vguard_asio vguard_warnings)

add_test(NAME integration.cpg_bus COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/cpg_bus.sh)
set_tests_properties(integration.cpg_bus PROPERTIES LABELS integration
                     ENVIRONMENT "VG_BIN=${CMAKE_BINARY_DIR}/bin;VG_SRC=${CMAKE_SOURCE_DIR}"
                     SKIP_RETURN_CODE 77 RUN_SERIAL TRUE TIMEOUT 300)

add_test(NAME integration.cluster_fence COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/cluster_fence.sh)
set_tests_properties(integration.cluster_fence PROPERTIES LABELS integration
                     ENVIRONMENT "VG_BIN=${CMAKE_BINARY_DIR}/bin;VG_SRC=${CMAKE_SOURCE_DIR}"
                     SKIP_RETURN_CODE 77 RUN_SERIAL TRUE TIMEOUT 400)

add_test(NAME integration.cluster_pacemaker COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/cluster_pacemaker.sh)
set_tests_properties(integration.cluster_pacemaker PROPERTIES LABELS integration
                     ENVIRONMENT "VG_BIN=${CMAKE_BINARY_DIR}/bin;VG_SRC=${CMAKE_SOURCE_DIR}"
                     SKIP_RETURN_CODE 77 RUN_SERIAL TRUE TIMEOUT 300)

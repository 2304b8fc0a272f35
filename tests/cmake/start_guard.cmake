# The start guard on 3 real hypervisor hosts (network namespaces; per host corosync, libvirtd with QEMU/TCG guests
# and vguard-hook as its qemu hook, vguardd in cluster mode): refused double starts, live migration hand-over,
# racing starts, fail-closed without vguardd, lost owner until confirm-fenced. The script exits 77 (skip) without
# root, qemu-system-x86_64, libvirtd or corosync. RACE_ROUNDS (default 100) sets the racing rounds.
# (Included from tests/CMakeLists.txt: CMAKE_CURRENT_SOURCE_DIR is tests/.)
add_test(NAME integration.start_guard COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/start_guard.sh)
set_tests_properties(integration.start_guard PROPERTIES LABELS integration
                     ENVIRONMENT "VG_BIN=${CMAKE_BINARY_DIR}/bin;VG_SRC=${CMAKE_SOURCE_DIR}"
                     SKIP_RETURN_CODE 77 RUN_SERIAL TRUE TIMEOUT 900)

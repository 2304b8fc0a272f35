# fence_vguard in protocol xvm against Debian's unmodified fence_virtd (multicast and tcp listeners, libvirt
# backend on the test driver) in a private network namespace. Root; skipped (77) without fence_virtd.
add_test(NAME integration.agent_xvm COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/agent_xvm.sh)
set_tests_properties(integration.agent_xvm PROPERTIES LABELS integration
                     ENVIRONMENT "VG_BIN=${CMAKE_BINARY_DIR}/bin;VG_SRC=${CMAKE_SOURCE_DIR}"
                     SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE)

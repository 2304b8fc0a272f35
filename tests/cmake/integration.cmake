# Integration tests: real processes (vguardd, fence_vguard, vguardctl, pacemaker-fenced, stonith_admin).
# Scripts exit 77 to skip (not root, tool missing).
set(VG_IT_ENV "VG_BIN=${CMAKE_BINARY_DIR}/bin" "VG_SRC=${CMAKE_SOURCE_DIR}")
foreach(t agent_loopback pacemaker_fence libvirt_reconnect)
  add_test(NAME integration.${t} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/${t}.sh)
  set_tests_properties(integration.${t} PROPERTIES LABELS integration ENVIRONMENT "${VG_IT_ENV}"
                       SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE)
endforeach()

add_test(NAME docs.man_pages COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/man_pages.sh)
set_tests_properties(docs.man_pages PROPERTIES LABELS unit ENVIRONMENT "VG_SRC=${CMAKE_SOURCE_DIR}" SKIP_RETURN_CODE 77)
add_test(NAME integration.install_layout COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/install_layout.sh)
set_tests_properties(integration.install_layout PROPERTIES LABELS integration
                     ENVIRONMENT "VG_BUILD_DIR=${CMAKE_BINARY_DIR}")

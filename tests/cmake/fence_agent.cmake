# fence_vguard (fence_agent/): pure option/metadata/result tests, plus runs of the real binary.
add_executable(unit_fence_agent unit/agent_options_test.cpp unit/agent_metadata_test.cpp unit/agent_xvm_test.cpp)
target_link_libraries(unit_fence_agent PRIVATE fence_agent_lib fence_agent_xvm pugixml::pugixml vguard_test_main
                                               vguard_warnings util)
target_compile_definitions(unit_fence_agent PRIVATE VG_TEST_DATA="${VG_TEST_DATA}")
gtest_discover_tests(unit_fence_agent PROPERTIES LABELS unit)

# The metadata must validate against fence-agents' RelaxNG schema (skipped, 77, without xmllint or the schema).
add_test(NAME fence_agent_metadata_rng
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/unit/agent_metadata_rng.sh $<TARGET_FILE:fence_vguard>
                 /usr/share/cluster/relaxng/metadata.rng)
set_tests_properties(fence_agent_metadata_rng PROPERTIES LABELS unit SKIP_RETURN_CODE 77)

# The real binary, argv and stdin: exit codes and messages that need no daemon.
foreach(case IN ITEMS validate_missing_key_argv validate_missing_key_stdin validate_ok_argv validate_ok_stdin
                      validate_no_domain unreachable_argv unreachable_stdin short_key usage_error unknown_option
                      stdin_unknown_key version help metadata_stdin null_op stdin_blank_refused
                      xvm_missing_key xvm_hash_none_needs_no_key xvm_unix_socket_refused xvm_metadata_same
                      argv0_fence_xvm argv0_fence_virt xvm_vmchannel_unreachable xvm_tcp_unreachable
                      xvm_bad_multicast_address protocol_long_option)
  add_test(NAME fence_agent_cli_${case}
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/unit/agent_cli.sh $<TARGET_FILE:fence_vguard> ${case})
  set_tests_properties(fence_agent_cli_${case} PROPERTIES LABELS unit)
endforeach()

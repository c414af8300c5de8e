# What `cmake --install <build>` puts under CMAKE_INSTALL_PREFIX (default /usr/local; DESTDIR
# honoured), where the systemd units in deploy/ and the README expect it:
#   bin/                      polyphony, polyphony-worker, polyphony-submit, polyphony-runner
#   share/polyphony/docker/   the worker image's Dockerfile, scripted agent and agents.lock: a
#                             `docker build` context; the programs find it (common/data_dir.h)
#   share/polyphony/skills/   the agent skills (`polyphony init --skills DIR`)
#   share/doc/polyphony/      README.md, PROTOCOL.md and deploy/ (systemd units, example
#                             configs, the compose file, deploy/README.md)
# tests/install/install_test.cpp checks every path the units and the READMEs name.

install(TARGETS polyphony polyphony-worker polyphony-submit polyphony-runner
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(POLYPHONY_INSTALL_DOCKER_DIR ${CMAKE_INSTALL_DATADIR}/polyphony/docker)
install(FILES docker/Dockerfile docker/agents.lock docker/README.md
  DESTINATION ${POLYPHONY_INSTALL_DOCKER_DIR})
install(PROGRAMS docker/scripted-agent DESTINATION ${POLYPHONY_INSTALL_DOCKER_DIR})

# The agent skills `polyphony init --skills DIR` installs.
install(DIRECTORY skills/ DESTINATION ${CMAKE_INSTALL_DATADIR}/polyphony/skills)

install(FILES README.md protocol/PROTOCOL.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY deploy/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/deploy)

# Install rules: libraries, public headers, the CMake package (amsg::amsg,
# amsg::net, amsg::cohort, amsg::etcd, amsg::typed) and pkg-config files (amsg.pc, amsg-net.pc).
include(CMakePackageConfigHelpers)

set(AMSG_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/amsg)

install(TARGETS amsg amsg_net amsg_cohort EXPORT amsgTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/amsg DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${AMSG_GENERATED_INCLUDE}/amsg/version.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/amsg)
install(EXPORT amsgTargets NAMESPACE amsg:: FILE amsgTargets.cmake DESTINATION ${AMSG_CMAKE_DIR})
if(TARGET amsg_metrics)
  install(TARGETS amsg_metrics EXPORT amsgMetricsTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT amsgMetricsTargets NAMESPACE amsg:: FILE amsgMetricsTargets.cmake DESTINATION ${AMSG_CMAKE_DIR})
endif()
if(TARGET amsg_etcd)
  install(TARGETS amsg_etcd EXPORT amsgEtcdTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT amsgEtcdTargets NAMESPACE amsg:: FILE amsgEtcdTargets.cmake DESTINATION ${AMSG_CMAKE_DIR})
endif()
if(TARGET amsg_typed)
  install(TARGETS amsg_typed EXPORT amsgTypedTargets)
  install(EXPORT amsgTypedTargets NAMESPACE amsg:: FILE amsgTypedTargets.cmake DESTINATION ${AMSG_CMAKE_DIR})
endif()

configure_package_config_file(cmake/amsgConfig.cmake.in ${PROJECT_BINARY_DIR}/amsgConfig.cmake
                              INSTALL_DESTINATION ${AMSG_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/amsgConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/amsgConfig.cmake ${PROJECT_BINARY_DIR}/amsgConfigVersion.cmake
        DESTINATION ${AMSG_CMAKE_DIR})

# pkg-config: a static libamsg_net needs libzmq and UCX on the consumer's link line, so
# it is a public requirement there and a private one for the shared library.
list(JOIN AMSG_ASIO_DEFINITIONS " -D" AMSG_PC_DEFINITIONS)
set(AMSG_PC_DEFINITIONS "-D${AMSG_PC_DEFINITIONS}")
if(NOT ASIO_INCLUDE_DIR STREQUAL "/usr/include")  # Asio outside the default search path (it has no .pc file)
  string(PREPEND AMSG_PC_DEFINITIONS "-I${ASIO_INCLUDE_DIR} ")
endif()
if(BUILD_SHARED_LIBS)
  set(AMSG_PC_NET_REQUIRES "amsg")
  set(AMSG_PC_NET_REQUIRES_PRIVATE "libzmq ucx")
else()
  set(AMSG_PC_NET_REQUIRES "amsg libzmq ucx")
  set(AMSG_PC_NET_REQUIRES_PRIVATE "")
endif()
file(RELATIVE_PATH AMSG_PC_UP /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)  # the .pc files find the prefix from their own place
string(REGEX REPLACE "/$" "" AMSG_PC_UP "${AMSG_PC_UP}")
configure_file(cmake/amsg.pc.in ${PROJECT_BINARY_DIR}/amsg.pc @ONLY)
configure_file(cmake/amsg-net.pc.in ${PROJECT_BINARY_DIR}/amsg-net.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/amsg.pc ${PROJECT_BINARY_DIR}/amsg-net.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

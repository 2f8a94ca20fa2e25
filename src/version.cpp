#include "amsg/version.hpp"

namespace amsg {

const char* version() noexcept { return AMSG_VERSION_STRING; }

}  // namespace amsg

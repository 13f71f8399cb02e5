#ifndef SMARTPOLL_CJSONC_SHIM_H
#define SMARTPOLL_CJSONC_SHIM_H
// json-c, as Debian's libjson-c-dev installs it. Only SmartPollProtocol imports this module.
#include <json-c/json.h>
#endif

#ifndef SMARTPOLL_CMICROHTTPD_SHIM_H
#define SMARTPOLL_CMICROHTTPD_SHIM_H
// GNU libmicrohttpd, as Debian's libmicrohttpd-dev installs it: the HTTP server of the
// supervisor's metrics endpoint (metrics_listen). Only SmartPollSupervisor imports this module
// (smartpollctl must not link it). MHD_start_daemon is variadic, which Swift cannot call: this
// inline function passes the options the endpoint uses, each with its typed argument.
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <microhttpd.h>

/// A daemon serving `listener` (a bound, listening TCP socket, which it then owns) with its own
/// thread, which waits with epoll; at most `connection_limit` connections at once, each closed
/// after `timeout_seconds` without traffic. No log of its own (MHD_USE_ERROR_LOG is off): it
/// would write to the supervisor's stderr past its log. NULL when it cannot start (errno says why).
static inline struct MHD_Daemon *sp_mhd_start(
    int listener, unsigned int connection_limit, unsigned int timeout_seconds,
    MHD_AccessHandlerCallback handler, void *handler_context)
{
    return MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, handler, handler_context,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listener,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_seconds,
        MHD_OPTION_END);
}

/// A response with a copy of `size` bytes of `body` (an enum value Swift does not import by
/// name, MHD_RESPMEM_MUST_COPY, passed here).
static inline struct MHD_Response *sp_mhd_response_copying(size_t size, const void *body)
{
    return MHD_create_response_from_buffer(size, (void *)body, MHD_RESPMEM_MUST_COPY);
}
#endif

#ifndef SMARTPOLL_MICROHTTPD_H
#define SMARTPOLL_MICROHTTPD_H
// GNU libmicrohttpd, the HTTP server of the supervisor's metrics endpoint (metrics_listen),
// loaded when the endpoint starts (dlopen of libmicrohttpd.so.12, Debian's libmicrohttpd12)
// rather than linked: it and GnuTLS, which it links, would be mapped into every supervisor,
// with metrics or not. The headers are Debian's libmicrohttpd-dev.
//
// Swift calls the sp_mhd_ functions below, never MHD_ ones: the binary has no MHD symbol to
// link against. MHD_start_daemon is variadic, which Swift cannot call: sp_mhd_start passes the
// options the endpoint uses, each with its typed argument.
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <microhttpd.h>

/// libmicrohttpd's functions the supervisor uses, resolved by sp_mhd_load.
struct sp_mhd_functions {
    struct MHD_Daemon *(*start_daemon)(
        unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback accept_policy, void *accept_policy_context,
        MHD_AccessHandlerCallback handler, void *handler_context, ...);
    void (*stop_daemon)(struct MHD_Daemon *daemon);
    struct MHD_Response *(*create_response_from_buffer)(size_t size, void *buffer, enum MHD_ResponseMemoryMode mode);
    struct MHD_Response *(*create_response_from_buffer_with_free_callback_cls)(
        size_t size, void *buffer, MHD_ContentReaderFreeCallback free_callback, void *free_context);
    void (*destroy_response)(struct MHD_Response *response);
    enum MHD_Result (*add_response_header)(struct MHD_Response *response, const char *header, const char *content);
    enum MHD_Result (*queue_response)(
        struct MHD_Connection *connection, unsigned int status_code, struct MHD_Response *response);
};

/// Filled by the first successful sp_mhd_load; read only after it.
extern struct sp_mhd_functions sp_mhd;

/// Loads libmicrohttpd once for the process, from any thread. Returns NULL, or why it could not
/// (dlopen's or dlsym's message), the same text at every later call (static storage).
const char *sp_mhd_load(void);

/// A daemon serving `listener` (a bound, listening TCP socket, which it then owns) with its own
/// thread, which waits with epoll; at most `connection_limit` connections at once, each closed
/// after `timeout_seconds` without traffic. No log of its own (MHD_USE_ERROR_LOG is off): it
/// would write to the supervisor's stderr past its log. NULL when it cannot start (errno says why).
static inline struct MHD_Daemon *sp_mhd_start(
    int listener, unsigned int connection_limit, unsigned int timeout_seconds,
    MHD_AccessHandlerCallback handler, void *handler_context)
{
    return sp_mhd.start_daemon(
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
    return sp_mhd.create_response_from_buffer(size, (void *)body, MHD_RESPMEM_MUST_COPY);
}

/// A response that reads `size` bytes of `body` in place and calls `free_callback` with
/// `free_context` when libmicrohttpd is done with it.
static inline struct MHD_Response *sp_mhd_response_borrowing(
    size_t size, const void *body, MHD_ContentReaderFreeCallback free_callback, void *free_context)
{
    return sp_mhd.create_response_from_buffer_with_free_callback_cls(size, (void *)body, free_callback, free_context);
}

static inline void sp_mhd_stop_daemon(struct MHD_Daemon *daemon) { sp_mhd.stop_daemon(daemon); }
static inline void sp_mhd_destroy_response(struct MHD_Response *response) { sp_mhd.destroy_response(response); }
static inline enum MHD_Result sp_mhd_add_response_header(
    struct MHD_Response *response, const char *header, const char *content)
{
    return sp_mhd.add_response_header(response, header, content);
}
static inline enum MHD_Result sp_mhd_queue_response(
    struct MHD_Connection *connection, unsigned int status_code, struct MHD_Response *response)
{
    return sp_mhd.queue_response(connection, status_code, response);
}
#endif

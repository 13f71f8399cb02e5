#ifndef SMARTPOLL_CURL_H
#define SMARTPOLL_CURL_H
// libcurl, for the supervisor's etcd client (the cluster mode), loaded when a cluster starts
// (dlopen of libcurl.so.4, Debian's libcurl4) rather than linked: libcurl and what it links
// (OpenSSL, Kerberos, LDAP, SSH, ...) would be mapped into every supervisor, cluster or not,
// about 6 MiB of its resident memory. The headers are Debian's libcurl4-openssl-dev.
//
// Swift calls the sp_curl_ functions below, never curl_ ones: the binary has no curl symbol to
// link against. curl_easy_setopt and curl_multi_setopt are variadic, which Swift cannot call:
// the inline functions pass each option with its typed argument.
#include <stddef.h>
#include <curl/curl.h>

/// libcurl's functions the supervisor uses, resolved by sp_curl_load.
struct sp_curl_functions {
    CURLcode (*global_init)(long flags);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *multi, CURLMoption option, ...);
    CURLMcode (*multi_add_handle)(CURLM *multi, CURL *easy);
    CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *easy);
    CURLMcode (*multi_socket_action)(CURLM *multi, curl_socket_t socket, int mask, int *running);
    CURLMsg *(*multi_info_read)(CURLM *multi, int *queued);
    CURLMcode (*multi_cleanup)(CURLM *multi);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *easy, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *easy, CURLINFO info, ...);
    void (*easy_reset)(CURL *easy);
    void (*easy_cleanup)(CURL *easy);
    const char *(*easy_strerror)(CURLcode code);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *text);
    void (*slist_free_all)(struct curl_slist *list);
};

/// Filled by the first successful sp_curl_load; read only after it.
extern struct sp_curl_functions sp_curl;

/// Loads libcurl and initialises it (curl_global_init) once for the process, from any thread.
/// Returns NULL, or why it could not (dlopen's or dlsym's message, or the failed
/// initialisation), the same text at every later call (static storage, never changed again).
const char *sp_curl_load(void);

static inline CURLM *sp_curl_multi_init(void) { return sp_curl.multi_init(); }
static inline CURLMcode sp_curl_multi_add_handle(CURLM *multi, CURL *easy) { return sp_curl.multi_add_handle(multi, easy); }
static inline CURLMcode sp_curl_multi_remove_handle(CURLM *multi, CURL *easy)
{
    return sp_curl.multi_remove_handle(multi, easy);
}
static inline CURLMcode sp_curl_multi_socket_action(CURLM *multi, curl_socket_t socket, int mask, int *running)
{
    return sp_curl.multi_socket_action(multi, socket, mask, running);
}
static inline CURLMsg *sp_curl_multi_info_read(CURLM *multi, int *queued) { return sp_curl.multi_info_read(multi, queued); }
static inline CURLMcode sp_curl_multi_cleanup(CURLM *multi) { return sp_curl.multi_cleanup(multi); }
static inline CURL *sp_curl_easy_init(void) { return sp_curl.easy_init(); }
static inline void sp_curl_easy_reset(CURL *easy) { sp_curl.easy_reset(easy); }
static inline void sp_curl_easy_cleanup(CURL *easy) { sp_curl.easy_cleanup(easy); }
static inline const char *sp_curl_easy_strerror(CURLcode code) { return sp_curl.easy_strerror(code); }
static inline struct curl_slist *sp_curl_slist_append(struct curl_slist *list, const char *text)
{
    return sp_curl.slist_append(list, text);
}
static inline void sp_curl_slist_free_all(struct curl_slist *list) { sp_curl.slist_free_all(list); }

static inline CURLMcode sp_curl_multi_set_callbacks(
    CURLM *multi, curl_socket_callback socket_function, curl_multi_timer_callback timer_function, void *user)
{
    CURLMcode code = sp_curl.multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_function);
    if (code == CURLM_OK) code = sp_curl.multi_setopt(multi, CURLMOPT_SOCKETDATA, user);
    if (code == CURLM_OK) code = sp_curl.multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_function);
    if (code == CURLM_OK) code = sp_curl.multi_setopt(multi, CURLMOPT_TIMERDATA, user);
    return code;
}
/// One POST of `body` (copied by curl) to `url`, its reply bytes to `write_function`.
/// `timeout_ms` 0: no limit on the whole transfer (a watch stream); the connect still has
/// `connect_timeout_ms`.
static inline CURLcode sp_curl_easy_prepare_post(
    CURL *easy, const char *url, const char *body, long body_length, struct curl_slist *headers,
    long timeout_ms, long connect_timeout_ms, curl_write_callback write_function, void *user,
    curl_closesocket_callback close_function, void *close_user)
{
    CURLcode code = sp_curl.easy_setopt(easy, CURLOPT_URL, url);
    // The loop's thread only: no SIGALRM for name resolution timeouts, no SIGPIPE handler swap.
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_POSTFIELDSIZE, body_length);
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body);
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_function);
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_WRITEDATA, user);
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_PRIVATE, user);
    // A connection keeps the close function of the handle that opened it.
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_function);
    if (code == CURLE_OK) code = sp_curl.easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, close_user);
    return code;
}

static inline void *sp_curl_easy_private(CURL *easy)
{
    char *user = NULL;
    sp_curl.easy_getinfo(easy, CURLINFO_PRIVATE, &user);
    return user;
}

static inline long sp_curl_easy_response_code(CURL *easy)
{
    long status = 0;
    sp_curl.easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/// The connections a transfer had to open (0: it reused one from the multi handle's cache).
static inline long sp_curl_easy_new_connections(CURL *easy)
{
    long count = 0;
    sp_curl.easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &count);
    return count;
}

/// The easy handle and result of a CURLMSG_DONE message (the union Swift reads awkwardly).
static inline CURLcode sp_curl_message_result(const CURLMsg *message) { return message->data.result; }
#endif

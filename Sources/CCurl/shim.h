#ifndef SMARTPOLL_CCURL_SHIM_H
#define SMARTPOLL_CCURL_SHIM_H
// libcurl, as Debian's libcurl4-openssl-dev installs it. Only SmartPollSupervisor imports this
// module (smartpollctl must not link curl). curl_easy_setopt and curl_multi_setopt are variadic,
// which Swift cannot call: these inline functions pass each option with its typed argument.
#include <curl/curl.h>

static inline CURLMcode sp_curl_multi_set_callbacks(
    CURLM *multi, curl_socket_callback socket_function, curl_multi_timer_callback timer_function, void *user)
{
    CURLMcode code = curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_function);
    if (code == CURLM_OK) code = curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, user);
    if (code == CURLM_OK) code = curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_function);
    if (code == CURLM_OK) code = curl_multi_setopt(multi, CURLMOPT_TIMERDATA, user);
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
    CURLcode code = curl_easy_setopt(easy, CURLOPT_URL, url);
    // The loop's thread only: no SIGALRM for name resolution timeouts, no SIGPIPE handler swap.
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, body_length);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_function);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_WRITEDATA, user);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_PRIVATE, user);
    // A connection keeps the close function of the handle that opened it.
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, close_function);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, close_user);
    return code;
}

static inline void *sp_curl_easy_private(CURL *easy)
{
    char *user = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &user);
    return user;
}

static inline long sp_curl_easy_response_code(CURL *easy)
{
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/// The connections a transfer had to open (0: it reused one from the multi handle's cache).
static inline long sp_curl_easy_new_connections(CURL *easy)
{
    long count = 0;
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &count);
    return count;
}

/// The easy handle and result of a CURLMSG_DONE message (the union Swift reads awkwardly).
static inline CURLcode sp_curl_message_result(const CURLMsg *message) { return message->data.result; }
#endif

// The libraries the supervisor loads only when a feature needs them (smartpoll_curl.h,
// smartpoll_microhttpd.h say why): each loaded once for the process, its functions resolved
// into a table, or the reason it could not be, kept for every later caller.
#include "smartpoll_curl.h"
#include "smartpoll_microhttpd.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

/// One symbol to resolve, and where its address goes.
struct symbol {
    const char *name;
    void *slot;
};

/// Opens `soname` and resolves every symbol of `symbols` (ended by a NULL name); the library
/// stays loaded for the process. Returns 1, or 0 with the reason in `failure`.
static int load_library(const char *soname, const struct symbol *symbols, char *failure, size_t size)
{
    // RTLD_LOCAL: its symbols stay out of the global scope (nothing else resolves against them).
    void *library = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        const char *reason = dlerror();
        snprintf(failure, size, "%s", reason ? reason : "cannot be loaded");
        return 0;
    }
    for (const struct symbol *symbol = symbols; symbol->name != NULL; symbol++) {
        void *address = dlsym(library, symbol->name);
        if (address == NULL) {
            snprintf(failure, size, "%s has no %s", soname, symbol->name);
            return 0;
        }
        *(void **)symbol->slot = address;
    }
    return 1;
}

// --- libcurl ---

struct sp_curl_functions sp_curl;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
/// Why loading failed; written only inside pthread_once, read only after it.
static char curl_failure[512];
static int curl_loaded;

static void load_curl(void)
{
    struct sp_curl_functions loaded;
    const struct symbol symbols[] = {
        {"curl_global_init", &loaded.global_init},
        {"curl_multi_init", &loaded.multi_init},
        {"curl_multi_setopt", &loaded.multi_setopt},
        {"curl_multi_add_handle", &loaded.multi_add_handle},
        {"curl_multi_remove_handle", &loaded.multi_remove_handle},
        {"curl_multi_socket_action", &loaded.multi_socket_action},
        {"curl_multi_info_read", &loaded.multi_info_read},
        {"curl_multi_cleanup", &loaded.multi_cleanup},
        {"curl_easy_init", &loaded.easy_init},
        {"curl_easy_setopt", &loaded.easy_setopt},
        {"curl_easy_getinfo", &loaded.easy_getinfo},
        {"curl_easy_reset", &loaded.easy_reset},
        {"curl_easy_cleanup", &loaded.easy_cleanup},
        {"curl_easy_strerror", &loaded.easy_strerror},
        {"curl_slist_append", &loaded.slist_append},
        {"curl_slist_free_all", &loaded.slist_free_all},
        {NULL, NULL},
    };
    if (!load_library("libcurl.so.4", symbols, curl_failure, sizeof curl_failure)) return;
    // Once for the process: curl_global_init is not thread-safe itself; pthread_once makes it so.
    CURLcode code = loaded.global_init(CURL_GLOBAL_DEFAULT);
    if (code != CURLE_OK) {
        snprintf(curl_failure, sizeof curl_failure, "curl_global_init failed: %s", loaded.easy_strerror(code));
        return;
    }
    sp_curl = loaded;
    curl_loaded = 1;
}

const char *sp_curl_load(void)
{
    pthread_once(&curl_once, load_curl);
    return curl_loaded ? NULL : curl_failure;
}

// --- libmicrohttpd ---

struct sp_mhd_functions sp_mhd;
static pthread_once_t mhd_once = PTHREAD_ONCE_INIT;
static char mhd_failure[512];
static int mhd_loaded;

static void load_mhd(void)
{
    struct sp_mhd_functions loaded;
    const struct symbol symbols[] = {
        {"MHD_start_daemon", &loaded.start_daemon},
        {"MHD_stop_daemon", &loaded.stop_daemon},
        {"MHD_create_response_from_buffer", &loaded.create_response_from_buffer},
        {"MHD_create_response_from_buffer_with_free_callback_cls",
         &loaded.create_response_from_buffer_with_free_callback_cls},
        {"MHD_destroy_response", &loaded.destroy_response},
        {"MHD_add_response_header", &loaded.add_response_header},
        {"MHD_queue_response", &loaded.queue_response},
        {NULL, NULL},
    };
    if (!load_library("libmicrohttpd.so.12", symbols, mhd_failure, sizeof mhd_failure)) return;
    sp_mhd = loaded;
    mhd_loaded = 1;
}

const char *sp_mhd_load(void)
{
    pthread_once(&mhd_once, load_mhd);
    return mhd_loaded ? NULL : mhd_failure;
}

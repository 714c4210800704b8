/*
 * atpfast_hosted.c — the exports of atpfast.h for a process that needs the GPU backend.
 *
 * The NativeAOT libatpfast.so cannot run ILGPU (it compiles kernels from IL at run time), so this shim implements the
 * same header by starting the .NET runtime through hostfxr (nethost.h and libnethost.a from the SDK's
 * packs/Microsoft.NETCore.App.Host.linux-x64/<version>/runtimes/linux-x64/native) and forwarding every call to the
 * [UnmanagedCallersOnly] methods of the JIT build libatpfast.dll, which references AtpFast.Gpu. Build it as a
 * libatpfast.so of its own and put it beside the hosted publish: a host links the same way to either library.
 *
 *   dotnet publish src/AtpFast.Native -c Release -o artifacts/native-hosted
 *   NH=$DOTNET_ROOT/packs/Microsoft.NETCore.App.Host.linux-x64/<version>/runtimes/linux-x64/native
 *   gcc -O2 -shared -fPIC -I src/AtpFast.Native/include -I $NH src/AtpFast.Native/hosted/atpfast_hosted.c \
 *       -Wl,--version-script=src/AtpFast.Native/hosted/libatpfast.map -o artifacts/native-hosted/libatpfast.so \
 *       $NH/libnethost.a -lstdc++ -ldl -lpthread
 *
 * It finds libatpfast.dll and libatpfast.runtimeconfig.json in $ATPFAST_MANAGED_DIR, else in its own folder. The
 * runtime starts on the first call (once per process, thread-safe); if it cannot, every function answers
 * ATP_ERR_NOT_AVAILABLE and atp_last_error() says why. The runtime needs the shared framework (Microsoft.NETCore.App
 * 10) installed where nethost looks: $DOTNET_ROOT, or the default install location.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coreclr_delegates.h>
#include <hostfxr.h>
#include <nethost.h>

#include "atpfast.h"

/* The exports that leave the last error alone: return type, name, parameters, arguments, value without a runtime. */
#define ATP_QUIET_FUNCTIONS(X)                                                                                                 \
    X(int32_t, atp_version, (void), (), 0)                                                                                      \
    X(const char *, atp_version_string, (void), (), "")                                                                         \
    X(const char *, atp_status_name, (atp_status status), (status), local_status_name(status))

/* Every other export: the same columns; without a runtime they answer ATP_ERR_NOT_AVAILABLE and set the last error. */
#define ATP_FUNCTIONS(X)                                                                                                       \
    X(atp_status, atp_options_init, (atp_options * options), (options), ATP_ERR_NOT_AVAILABLE)                                   \
    X(atp_status, atp_context_create, (int32_t backend, int32_t threads, atp_context *out), (backend, threads, out),            \
      ATP_ERR_NOT_AVAILABLE)                                                                                                    \
    X(atp_status, atp_context_destroy, (atp_context context), (context), ATP_ERR_NOT_AVAILABLE)                                  \
    X(atp_status, atp_model_load_file, (atp_context context, const char *path, atp_model *out), (context, path, out),           \
      ATP_ERR_NOT_AVAILABLE)                                                                                                    \
    X(atp_status, atp_model_load_buffer, (atp_context context, const void *data, size_t size, atp_model *out),                  \
      (context, data, size, out), ATP_ERR_NOT_AVAILABLE)                                                                        \
    X(atp_status, atp_model_load_demo, (atp_context context, atp_model *out), (context, out), ATP_ERR_NOT_AVAILABLE)              \
    X(atp_status, atp_model_destroy, (atp_model model), (model), ATP_ERR_NOT_AVAILABLE)                                          \
    X(atp_status, atp_model_describe, (atp_model model, atp_model_info *info), (model, info), ATP_ERR_NOT_AVAILABLE)             \
    X(atp_status, atp_model_node_count,                                                                                         \
      (atp_model model, size_t seq_len, uint32_t node_types, int32_t positions, size_t *count),                                 \
      (model, seq_len, node_types, positions, count), ATP_ERR_NOT_AVAILABLE)                                                    \
    X(atp_status, atp_model_node_name,                                                                                          \
      (atp_model model, size_t seq_len, int32_t node_id, char *buffer, size_t capacity, size_t *needed),                        \
      (model, seq_len, node_id, buffer, capacity, needed), ATP_ERR_NOT_AVAILABLE)                                               \
    X(atp_status, atp_model_node_id, (atp_model model, size_t seq_len, const char *name, int32_t *node_id),                     \
      (model, seq_len, name, node_id), ATP_ERR_NOT_AVAILABLE)                                                                   \
    X(atp_status, atp_model_tokenize, (atp_model model, const char *text, int32_t *ids, size_t capacity, size_t *count),         \
      (model, text, ids, capacity, count), ATP_ERR_NOT_AVAILABLE)                                                               \
    X(atp_status, atp_run,                                                                                                      \
      (atp_context context, atp_model model, const atp_options *options, const int32_t *clean_ids, const int32_t *noise_ids,    \
       size_t n_pairs, size_t seq_len, const int32_t *answer_ids, const int32_t *wrong_ids, atp_result *out),                   \
      (context, model, options, clean_ids, noise_ids, n_pairs, seq_len, answer_ids, wrong_ids, out), ATP_ERR_NOT_AVAILABLE)     \
    X(atp_status, atp_result_destroy, (atp_result result), (result), ATP_ERR_NOT_AVAILABLE)                                      \
    X(atp_status, atp_result_describe, (atp_result result, atp_result_info *info), (result, info), ATP_ERR_NOT_AVAILABLE)        \
    X(atp_status, atp_result_row_count, (atp_result result, size_t *rows), (result, rows), ATP_ERR_NOT_AVAILABLE)                \
    X(atp_status, atp_result_read,                                                                                              \
      (atp_result result, size_t first, size_t capacity, int32_t *node_ids, int32_t *ranks, double *estimates,                  \
       double *signed_estimates, double *verified_effects, size_t *written),                                                    \
      (result, first, capacity, node_ids, ranks, estimates, signed_estimates, verified_effects, written), ATP_ERR_NOT_AVAILABLE) \
    X(atp_status, atp_result_node_name, (atp_result result, int32_t node_id, char *buffer, size_t capacity, size_t *needed),     \
      (result, node_id, buffer, capacity, needed), ATP_ERR_NOT_AVAILABLE)                                                       \
    X(atp_status, atp_result_notes, (atp_result result, char *buffer, size_t capacity, size_t *needed),                          \
      (result, buffer, capacity, needed), ATP_ERR_NOT_AVAILABLE)                                                                \
    X(atp_status, atp_result_write, (atp_result result, const char *path, int32_t format, size_t top),                           \
      (result, path, format, top), ATP_ERR_NOT_AVAILABLE)

#define DECLARE_POINTER(ret, name, params, args, fail) static ret(*p_##name) params;
ATP_QUIET_FUNCTIONS(DECLARE_POINTER)
ATP_FUNCTIONS(DECLARE_POINTER)
static const char *(*p_atp_last_error)(void);

static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static int started;                /* 1 once every function pointer is resolved */
static char start_error[2048];     /* why the runtime could not start */
static __thread char call_error[2304];

/* atp_status_name without a runtime (the library's own table when it runs). */
static const char *local_status_name(atp_status status)
{
    static const char *const names[] = {"ATP_OK", "ATP_ERR_NULL_ARGUMENT", "ATP_ERR_BAD_HANDLE", "ATP_ERR_BAD_ARGUMENT",
                                        "ATP_ERR_IO", "ATP_ERR_MODEL", "ATP_ERR_INPUT", "ATP_ERR_NOT_AVAILABLE",
                                        "ATP_ERR_BUFFER_TOO_SMALL", "ATP_ERR_METRIC_UNDEFINED", "ATP_ERR_NON_FINITE",
                                        "ATP_ERR_OUT_OF_MEMORY", "ATP_ERR_INTERNAL"};
    return status >= 0 && status < (atp_status)(sizeof names / sizeof names[0]) ? names[status] : "ATP_ERR_UNKNOWN";
}

static void fail_start(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    size_t used = strlen(start_error);
    vsnprintf(start_error + used, sizeof start_error - used, format, args);
    va_end(args);
}

static void HOSTFXR_CALLTYPE collect_hostfxr_error(const char_t *message)
{
    fail_start("%s%s", start_error[0] ? "; " : "", message);
}

static void start_runtime(void)
{
    char dir[PATH_MAX - 64], assembly[PATH_MAX], config[PATH_MAX], hostfxr_path[PATH_MAX];
    const char *env = getenv("ATPFAST_MANAGED_DIR");
    if (env && *env) {
        if (strlen(env) >= sizeof dir) { fail_start("ATPFAST_MANAGED_DIR is too long"); return; }
        snprintf(dir, sizeof dir, "%s", env);
    } else {
        Dl_info self;
        if (!dladdr((void *)start_runtime, &self) || !self.dli_fname || strlen(self.dli_fname) >= sizeof dir) {
            fail_start("cannot find the shim's own folder");
            return;
        }
        snprintf(dir, sizeof dir, "%s", self.dli_fname);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0'; else snprintf(dir, sizeof dir, ".");
    }
    snprintf(assembly, sizeof assembly, "%s/libatpfast.dll", dir);
    snprintf(config, sizeof config, "%s/libatpfast.runtimeconfig.json", dir);

    struct get_hostfxr_parameters parameters = {sizeof parameters, assembly, NULL};
    size_t size = sizeof hostfxr_path;
    int rc = get_hostfxr_path(hostfxr_path, &size, &parameters);
    if (rc != 0) { fail_start("nethost found no hostfxr (0x%x): install the .NET 10 runtime or set DOTNET_ROOT", (unsigned)rc); return; }
    void *hostfxr = dlopen(hostfxr_path, RTLD_NOW | RTLD_LOCAL);
    if (!hostfxr) { fail_start("cannot load %s: %s", hostfxr_path, dlerror()); return; }
    hostfxr_initialize_for_runtime_config_fn initialize =
        (hostfxr_initialize_for_runtime_config_fn)dlsym(hostfxr, "hostfxr_initialize_for_runtime_config");
    hostfxr_get_runtime_delegate_fn get_delegate = (hostfxr_get_runtime_delegate_fn)dlsym(hostfxr, "hostfxr_get_runtime_delegate");
    hostfxr_close_fn close_handle = (hostfxr_close_fn)dlsym(hostfxr, "hostfxr_close");
    hostfxr_set_error_writer_fn set_error_writer = (hostfxr_set_error_writer_fn)dlsym(hostfxr, "hostfxr_set_error_writer");
    if (!initialize || !get_delegate || !close_handle || !set_error_writer) { fail_start("%s lacks the hosting API", hostfxr_path); return; }

    hostfxr_error_writer_fn previous = set_error_writer(collect_hostfxr_error);
    hostfxr_handle handle = NULL;
    rc = initialize(config, NULL, &handle);
    if (rc < 0 || !handle) {  /* 0: started; 1, 2: the process already runs a compatible runtime */
        fail_start("%shostfxr could not start the runtime for %s (0x%x)", start_error[0] ? "; " : "", config, (unsigned)rc);
        if (handle) close_handle(handle);
        set_error_writer(previous);
        return;
    }
    load_assembly_and_get_function_pointer_fn load = NULL;
    rc = get_delegate(handle, hdt_load_assembly_and_get_function_pointer, (void **)&load);
    close_handle(handle);
    set_error_writer(previous);
    if (rc != 0 || !load) { fail_start("hostfxr gave no load_assembly_and_get_function_pointer (0x%x)", (unsigned)rc); return; }

    const char_t *type = "AtpFast.Native.Exports, libatpfast";
#define RESOLVE(ret, name, params, args, fail)                                                                                 \
    rc = load(assembly, type, #name, UNMANAGEDCALLERSONLY_METHOD, NULL, (void **)&p_##name);                                     \
    if (rc != 0 || !p_##name) { fail_start("%s has no [UnmanagedCallersOnly] %s (0x%x)", assembly, #name, (unsigned)rc); return; }
    ATP_QUIET_FUNCTIONS(RESOLVE)
    ATP_FUNCTIONS(RESOLVE)
    RESOLVE(const char *, atp_last_error, (void), (), "")
#undef RESOLVE
    started = 1;
}

/* 1 when the runtime is up; else records "<function>: <why>" as the thread's last error. */
static int ready(const char *function)
{
    pthread_once(&start_once, start_runtime);
    if (started) return 1;
    snprintf(call_error, sizeof call_error, "%s: the hosted .NET runtime is not available: %s", function, start_error);
    return 0;
}

#define DEFINE_EXPORT(ret, name, params, args, fail)                                                                           \
    ret name params                                                                                                             \
    {                                                                                                                           \
        if (!ready(#name)) return fail;                                                                                         \
        return p_##name args;                                                                                                   \
    }
ATP_FUNCTIONS(DEFINE_EXPORT)

#define DEFINE_QUIET_EXPORT(ret, name, params, args, fail)                                                                     \
    ret name params                                                                                                             \
    {                                                                                                                           \
        pthread_once(&start_once, start_runtime);                                                                               \
        if (!started) return fail;                                                                                              \
        return p_##name args;                                                                                                   \
    }
ATP_QUIET_FUNCTIONS(DEFINE_QUIET_EXPORT)

const char *atp_last_error(void)
{
    pthread_once(&start_once, start_runtime);
    return started ? p_atp_last_error() : call_error;
}

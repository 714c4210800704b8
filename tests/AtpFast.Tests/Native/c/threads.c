/*
 * threads: the threading rules of atpfast.h. Threads run AtP* concurrently on one shared context (serialised by its
 * lock) and on contexts of their own, while another thread reads the results; every run must equal a single-threaded
 * reference bit for bit. Then a context is destroyed while a run on it is in progress: the destroy waits, the run
 * either completes or answers ATP_ERR_BAD_HANDLE, and afterwards every handle of the context is invalid.
 * Prints "threads ok" and exits 0 when everything holds.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "atpfast.h"

#define TOP 20
#define RUNS 3
static int32_t clean[14], noise[14], answer, wrong;
static int32_t reference_ids[TOP];
static double reference_estimates[TOP];
static atp_context shared;
static atp_model shared_model;
static int failures;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *what, atp_status s)
{
    pthread_mutex_lock(&report_lock);
    failures++;
    printf("FAILED %s: %s: %s\n", what, atp_status_name(s), atp_last_error());
    pthread_mutex_unlock(&report_lock);
}

static int same_as_reference(atp_result r)
{
    int32_t ids[TOP];
    double estimates[TOP];
    size_t n = 0;
    atp_status s = atp_result_read(r, 0, TOP, ids, NULL, estimates, NULL, NULL, &n);
    if (s != ATP_OK) { fail("atp_result_read", s); return 0; }
    return n == TOP && memcmp(ids, reference_ids, sizeof ids) == 0 && memcmp(estimates, reference_estimates, sizeof estimates) == 0;
}

static void *worker(void *arg)
{
    int own = arg != NULL;
    atp_context ctx = shared;
    atp_model model = shared_model;
    atp_status s;
    if (own) {
        if ((s = atp_context_create(ATP_BACKEND_CPU, 1, &ctx)) != ATP_OK) { fail("atp_context_create", s); return NULL; }
        if ((s = atp_model_load_demo(ctx, &model)) != ATP_OK) { fail("atp_model_load_demo", s); return NULL; }
    }
    for (int i = 0; i < RUNS; i++) {
        atp_result r;
        if ((s = atp_run(ctx, model, NULL, clean, noise, 1, 14, &answer, &wrong, &r)) != ATP_OK) { fail("atp_run", s); continue; }
        if (!same_as_reference(r)) fail(own ? "own context: result differs" : "shared context: result differs", ATP_OK);
        if ((s = atp_result_destroy(r)) != ATP_OK) fail("atp_result_destroy", s);
    }
    if (own && (s = atp_context_destroy(ctx)) != ATP_OK) fail("atp_context_destroy", s);
    return NULL;
}

static atp_context doomed;
static atp_model doomed_model;
static atp_status doomed_status;
static atp_result doomed_result;

static void *doomed_run(void *arg)
{
    (void)arg;
    atp_options o;
    o.struct_size = sizeof o;
    atp_options_init(&o);
    o.method = ATP_METHOD_EXACT; /* long enough for the destroy to arrive mid-run */
    doomed_status = atp_run(doomed, doomed_model, &o, clean, noise, 1, 14, &answer, &wrong, &doomed_result);
    return NULL;
}

int main(void)
{
    atp_status s;
    size_t n;
    if ((s = atp_context_create(ATP_BACKEND_CPU, 0, &shared)) != ATP_OK || (s = atp_model_load_demo(shared, &shared_model)) != ATP_OK) {
        fail("setup", s);
        return 1;
    }
    atp_model_tokenize(shared_model, "When Tom and Peter went to the school, Peter gave a gift to", clean, 14, &n);
    atp_model_tokenize(shared_model, "When Clara and Rose went to the school, Laura gave a gift to", noise, 14, &n);
    atp_model_tokenize(shared_model, "Tom", &answer, 1, &n);
    atp_model_tokenize(shared_model, "Peter", &wrong, 1, &n);
    atp_result reference;
    if ((s = atp_run(shared, shared_model, NULL, clean, noise, 1, 14, &answer, &wrong, &reference)) != ATP_OK) { fail("reference", s); return 1; }
    atp_result_read(reference, 0, TOP, reference_ids, NULL, reference_estimates, NULL, NULL, &n);

    pthread_t threads[4];
    for (int i = 0; i < 4; i++) pthread_create(&threads[i], NULL, worker, i < 2 ? NULL : (void *)1);
    for (int k = 0; k < 200; k++) /* concurrent reads of a result while the workers run */
        if (!same_as_reference(reference)) { fail("concurrent read", ATP_OK); break; }
    for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);

    if ((s = atp_context_create(ATP_BACKEND_CPU, 0, &doomed)) != ATP_OK || (s = atp_model_load_demo(doomed, &doomed_model)) != ATP_OK) {
        fail("setup doomed", s);
        return 1;
    }
    pthread_t runner;
    pthread_create(&runner, NULL, doomed_run, NULL);
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    if ((s = atp_context_destroy(doomed)) != ATP_OK) fail("destroy during a run", s);
    pthread_join(runner, NULL);
    if (doomed_status != ATP_OK && doomed_status != ATP_ERR_BAD_HANDLE) fail("the run on a destroyed context", doomed_status);
    atp_model_info info;
    info.struct_size = sizeof info;
    if ((s = atp_model_describe(doomed_model, &info)) != ATP_ERR_BAD_HANDLE) fail("model of a destroyed context", s);
    if (doomed_status == ATP_OK && (s = atp_result_row_count(doomed_result, &n)) != ATP_ERR_BAD_HANDLE) fail("result of a destroyed context", s);

    atp_context_destroy(shared);
    printf("doomed run: %s\n", atp_status_name(doomed_status));
    printf(failures ? "threads FAILED (%d)\n" : "threads ok\n", failures);
    return failures ? 1 : 0;
}

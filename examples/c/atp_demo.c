/*
 * atp_demo: runs AtP* on one IOI prompt pair of the model embedded in libatpfast and prints the top nodes.
 *
 *   atp_demo [top [digits]]     top: rows to print (default 10, also how many are verified by exact patching)
 *                               digits: significant digits of the numbers (default 9; 17 prints them exactly)
 *
 * stdout is the result only (the tests compare it with the C# API); the load-to-first-result time goes to stderr.
 * Build: see README.md beside this file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atpfast.h"

#define CHECK(call)                                                                                  \
    do {                                                                                             \
        atp_status status_ = (call);                                                                 \
        if (status_ != ATP_OK) {                                                                     \
            fprintf(stderr, "atp_demo: %s failed: %s: %s\n", #call, atp_status_name(status_), atp_last_error()); \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Token ids of text; exits unless it has `expect` tokens (0: any number up to capacity). */
static size_t tokenize(atp_model model, const char *text, int32_t *ids, size_t capacity, size_t expect)
{
    size_t count = 0;
    CHECK(atp_model_tokenize(model, text, ids, capacity, &count));
    if (expect != 0 && count != expect) {
        fprintf(stderr, "atp_demo: '%s' is %zu tokens, expected %zu\n", text, count, expect);
        exit(1);
    }
    return count;
}

static const char *number(char *buffer, size_t size, int digits, double value)
{
    if (isnan(value)) return "-";
    snprintf(buffer, size, "%.*g", digits, value);
    return buffer;
}

int main(int argc, char **argv)
{
    double start = now_ms();
    int top = argc > 1 ? atoi(argv[1]) : 10;
    int digits = argc > 2 ? atoi(argv[2]) : 9;
    if (top < 1 || digits < 1 || digits > 17) {
        fprintf(stderr, "usage: atp_demo [top >= 1 [digits 1..17]]\n");
        return 2;
    }
    if (!ATP_VERSION_COMPATIBLE(atp_version())) {
        fprintf(stderr, "atp_demo: libatpfast %s does not implement atpfast.h %s\n", atp_version_string(), ATP_VERSION_STRING);
        return 1;
    }

    const char *clean = "When Tom and Peter went to the school, Peter gave a gift to";
    const char *noise = "When Clara and Rose went to the school, Laura gave a gift to";
    const char *answer = "Tom", *wrong = "Peter";

    atp_context context;
    atp_model model;
    CHECK(atp_context_create(ATP_BACKEND_AUTO, 0, &context));
    CHECK(atp_model_load_demo(context, &model));

    int32_t clean_ids[64], noise_ids[64], answer_id, wrong_id;
    size_t seq_len = tokenize(model, clean, clean_ids, 64, 0);
    tokenize(model, noise, noise_ids, 64, seq_len);
    tokenize(model, answer, &answer_id, 1, 1);
    tokenize(model, wrong, &wrong_id, 1, 1);

    atp_options options;
    options.struct_size = sizeof options;
    CHECK(atp_options_init(&options));
    options.method = ATP_METHOD_ATP_STAR;
    options.verify_top = top;

    atp_result result;
    CHECK(atp_run(context, model, &options, clean_ids, noise_ids, 1, seq_len, &answer_id, &wrong_id, &result));

    size_t rows = 0;
    CHECK(atp_result_row_count(result, &rows));
    size_t n = (size_t)top < rows ? (size_t)top : rows;
    int32_t *ids = malloc(n * sizeof *ids), *ranks = malloc(n * sizeof *ranks);
    double *estimates = malloc(n * sizeof *estimates), *signed_estimates = malloc(n * sizeof *signed_estimates);
    double *verified = malloc(n * sizeof *verified);
    size_t written = 0;
    CHECK(atp_result_read(result, 0, n, ids, ranks, estimates, signed_estimates, verified, &written));
    double first_result = now_ms();

    atp_result_info info;
    info.struct_size = sizeof info;
    CHECK(atp_result_describe(result, &info));
    char a[32], b[32], c[32];
    printf("atpfast %s (%s): atp* on the embedded IOI model\n", atp_version_string(), info.backend);
    printf("clean:  %s\n", clean);
    printf("noise:  %s\n", noise);
    printf("answer: %s (id %d), wrong: %s (id %d)\n", answer, answer_id, wrong, wrong_id);
    printf("%d pair of %d tokens, %lld nodes, %s forward passes per pair\n", info.pairs, info.seq_len, (long long)info.rows,
           number(a, sizeof a, digits, info.method_cost));
    printf("%4s  %-18s  %24s  %24s  %24s\n", "rank", "node", "estimate", "signed_estimate", "verified_effect");
    for (size_t i = 0; i < written; i++) {
        char name[64];
        CHECK(atp_result_node_name(result, ids[i], name, sizeof name, NULL));
        printf("%4d  %-18s  %24s  %24s  %24s\n", ranks[i], name, number(a, sizeof a, digits, estimates[i]),
               number(b, sizeof b, digits, signed_estimates[i]), number(c, sizeof c, digits, verified[i]));
    }
    fprintf(stderr, "atp_demo: load-to-first-result %.1f ms (main() to the first rows read, runtime start included)\n",
            first_result - start);

    free(ids); free(ranks); free(estimates); free(signed_estimates); free(verified);
    CHECK(atp_result_destroy(result));
    CHECK(atp_model_destroy(model));
    CHECK(atp_context_destroy(context));
    return 0;
}

/*
 * run_ids: one run of the C API on a model file, with token ids given on the command line; prints every row's rank,
 * node name, estimate, signed estimate and verified effect at 17 significant digits (exact doubles).
 *
 *   run_ids MODEL.onnx file|buffer METHOD NODE_TYPES VERIFY_TOP CLEAN_IDS NOISE_IDS ANSWER WRONG TOP
 *   (ids comma-separated; METHOD and NODE_TYPES as the ATP_METHOD_* value and ATP_NODE_* flags)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atpfast.h"

#define CHECK(call)                                                                                                \
    do {                                                                                                           \
        atp_status s_ = (call);                                                                                    \
        if (s_ != ATP_OK) { fprintf(stderr, "%s: %s: %s\n", #call, atp_status_name(s_), atp_last_error()); return 1; } \
    } while (0)

static size_t parse_ids(const char *text, int32_t *ids, size_t capacity)
{
    size_t n = 0;
    for (const char *p = text; *p && n < capacity; n++) {
        ids[n] = (int32_t)strtol(p, (char **)&p, 10);
        if (*p == ',') p++;
    }
    return n;
}

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(*size);
    if (fread(data, 1, *size, f) != *size) { free(data); data = NULL; }
    fclose(f);
    return data;
}

static void number(double v)
{
    if (v != v) printf(" -"); else printf(" %.17g", v);
}

int main(int argc, char **argv)
{
    if (argc != 11) { fprintf(stderr, "usage: see the comment at the top of run_ids.c\n"); return 2; }
    int32_t clean[256], noise[256];
    size_t t = parse_ids(argv[6], clean, 256);
    if (parse_ids(argv[7], noise, 256) != t) { fprintf(stderr, "clean and noise differ in length\n"); return 2; }
    int32_t answer = atoi(argv[8]), wrong = atoi(argv[9]);
    size_t top = (size_t)atol(argv[10]);

    atp_context ctx;
    atp_model model;
    atp_result result;
    CHECK(atp_context_create(ATP_BACKEND_CPU, 0, &ctx));
    if (strcmp(argv[2], "buffer") == 0) {
        size_t size = 0;
        unsigned char *data = read_file(argv[1], &size);
        if (!data) { perror(argv[1]); return 2; }
        CHECK(atp_model_load_buffer(ctx, data, size, &model));
        free(data); /* the library copied it */
    } else {
        CHECK(atp_model_load_file(ctx, argv[1], &model));
    }
    atp_model_info info;
    info.struct_size = sizeof info;
    CHECK(atp_model_describe(model, &info));
    printf("model family %d layers %d heads %d kv_heads %d d_model %d vocab %d tokenizer %d sha256 %s\n", info.family, info.layers,
           info.heads, info.kv_heads, info.d_model, info.vocab_size, info.has_tokenizer, info.sha256);

    atp_options options;
    options.struct_size = sizeof options;
    CHECK(atp_options_init(&options));
    options.method = atoi(argv[3]);
    options.node_types = (uint32_t)strtoul(argv[4], NULL, 0);
    options.verify_top = atoi(argv[5]);
    CHECK(atp_run(ctx, model, &options, clean, noise, 1, t, &answer, &wrong, &result));

    size_t rows = 0;
    CHECK(atp_result_row_count(result, &rows));
    size_t n = top < rows ? top : rows;
    int32_t *ids = malloc(n * sizeof *ids), *ranks = malloc(n * sizeof *ranks);
    double *est = malloc(n * sizeof *est), *sgn = malloc(n * sizeof *sgn), *ver = malloc(n * sizeof *ver);
    size_t written;
    CHECK(atp_result_read(result, 0, n, ids, ranks, est, sgn, ver, &written));
    printf("rows %zu\n", rows);
    for (size_t i = 0; i < written; i++) {
        char name[64];
        CHECK(atp_result_node_name(result, ids[i], name, sizeof name, NULL));
        printf("%d %s", ranks[i], name);
        number(est[i]);
        number(sgn[i]);
        number(ver[i]);
        printf("\n");
    }
    free(ids); free(ranks); free(est); free(sgn); free(ver);
    CHECK(atp_context_destroy(ctx));
    return 0;
}

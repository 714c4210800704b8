/*
 * bad_args: calls every function of atpfast.h with bad arguments (NULL pointers, wrong sizes, unknown paths, truncated
 * model buffers, destroyed, foreign and wrong-kind handles, out-of-range enum values) and checks each status, and
 * that the last-error message is a readable sentence naming the function (and "" after a success).
 *
 *   bad_args MODEL.onnx SCRATCH_DIR
 *
 * Prints one line per check: "check <function> <expected status> <got status> | <message>"; exits 0 when all pass.
 * Run by tests/AtpFast.Tests/Native/BadArgumentTests.cs, also under valgrind memcheck.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atpfast.h"

static int checks, failures;

static void report(const char *function, atp_status expected, atp_status got, int extra_ok, const char *extra)
{
    const char *message = atp_last_error();
    int ok = got == expected && extra_ok;
    if (expected != ATP_OK) {
        /* A readable message: non-empty, names the function, printable. */
        size_t n = strlen(function);
        if (strlen(message) < n + 10 || strncmp(message, function, n) != 0 || message[n] != ':') ok = 0;
        for (const char *p = message; *p; p++)
            if ((unsigned char)*p < 0x20) ok = 0;
    } else if (message[0] != '\0') {
        ok = 0;
    }
    checks++;
    if (!ok) failures++;
    printf("%s %s %s %s | %s%s%s\n", ok ? "check" : "FAILED", function, atp_status_name(expected), atp_status_name(got), message,
           extra ? " | " : "", extra ? extra : "");
}

/* EXPECT(function, expected status, call): one check. */
#define EXPECT(fn, status, call) report(#fn, (status), (call), 1, NULL)
/* EXPECT_THAT(function, expected status, call, condition): the status and a condition on the outputs. */
#define EXPECT_THAT(fn, status, call, cond) do { atp_status s_ = (call); report(#fn, (status), s_, (cond), #cond); } while (0)

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc((size_t)n);
    if (fread(data, 1, (size_t)n, f) != (size_t)n) { perror(path); exit(2); }
    fclose(f);
    *size = (size_t)n;
    return data;
}

static void *other_thread(void *arg)
{
    (void)arg;
    atp_context c;
    atp_context_create(-7, 0, &c); /* fails on this thread only */
    return strstr(atp_last_error(), "backend -7") ? (void *)1 : NULL;
}

#define FAKE_HANDLE(type) ((type)(uintptr_t)0x5eed5eed5eed5eedULL)

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: bad_args MODEL.onnx SCRATCH_DIR\n"); return 2; }
    const char *model_path = argv[1], *scratch = argv[2];
    size_t model_size;
    unsigned char *model_bytes = read_file(model_path, &model_size);
    char path[4096];

    /* ---- library ---- */
    printf("check atp_version %d %d | header %s, library %s\n", ATP_VERSION, atp_version(), ATP_VERSION_STRING, atp_version_string());
    checks++;
    if (atp_version() != ATP_VERSION || strcmp(atp_version_string(), ATP_VERSION_STRING) != 0 || !ATP_VERSION_COMPATIBLE(atp_version())) {
        failures++;
        printf("FAILED atp_version_string: the header's version is not the library's\n");
    } else {
        printf("check atp_version_string %s\n", atp_version_string());
    }
    checks++;
    if (strcmp(atp_status_name(ATP_ERR_BAD_HANDLE), "ATP_ERR_BAD_HANDLE") || strcmp(atp_status_name(-1), "ATP_ERR_UNKNOWN") ||
        strcmp(atp_status_name(12345), "ATP_ERR_UNKNOWN") || strcmp(atp_status_name(ATP_OK), "ATP_OK")) {
        failures++;
        printf("FAILED atp_status_name\n");
    } else {
        printf("check atp_status_name -1 -> %s\n", atp_status_name(-1));
    }

    atp_options options;
    EXPECT(atp_options_init, ATP_ERR_NULL_ARGUMENT, atp_options_init(NULL));
    options.struct_size = 0;
    EXPECT(atp_options_init, ATP_ERR_BAD_ARGUMENT, atp_options_init(&options));
    options.struct_size = sizeof options - 8;
    EXPECT(atp_options_init, ATP_ERR_BAD_ARGUMENT, atp_options_init(&options));
    options.struct_size = sizeof options;
    EXPECT_THAT(atp_options_init, ATP_OK, atp_options_init(&options),
                options.method == ATP_METHOD_ATP_STAR && options.node_types == ATP_NODES_DEFAULT && options.pairs_per_batch == 16);

    /* last error: per thread, and "" again after a success */
    atp_context_create(-1, 0, NULL);
    pthread_t thread;
    void *thread_ok = NULL;
    pthread_create(&thread, NULL, other_thread, NULL);
    pthread_join(thread, &thread_ok);
    checks++;
    if (!thread_ok || !strstr(atp_last_error(), "out is NULL")) {
        failures++;
        printf("FAILED atp_last_error: not per thread (main thread: '%s')\n", atp_last_error());
    } else {
        printf("check atp_last_error per-thread | %s\n", atp_last_error());
    }

    /* ---- contexts ---- */
    atp_context ctx = NULL, ctx2 = NULL, dead_ctx = NULL;
    EXPECT(atp_context_create, ATP_ERR_NULL_ARGUMENT, atp_context_create(ATP_BACKEND_CPU, 0, NULL));
    EXPECT(atp_context_create, ATP_ERR_BAD_ARGUMENT, atp_context_create(-1, 0, &ctx));
    EXPECT(atp_context_create, ATP_ERR_BAD_ARGUMENT, atp_context_create(3, 0, &ctx));
    EXPECT(atp_context_create, ATP_ERR_NOT_AVAILABLE, atp_context_create(ATP_BACKEND_CUDA, 0, &ctx));
    EXPECT(atp_context_create, ATP_ERR_BAD_ARGUMENT, atp_context_create(ATP_BACKEND_CPU, -1, &ctx));
    EXPECT(atp_context_create, ATP_ERR_BAD_ARGUMENT, atp_context_create(ATP_BACKEND_CPU, 100000, &ctx));
    EXPECT_THAT(atp_context_create, ATP_OK, atp_context_create(ATP_BACKEND_AUTO, 2, &ctx), ctx != NULL);
    EXPECT(atp_context_create, ATP_OK, atp_context_create(ATP_BACKEND_CPU, 1, &ctx2));
    EXPECT(atp_context_create, ATP_OK, atp_context_create(ATP_BACKEND_CPU, 1, &dead_ctx));
    EXPECT(atp_context_destroy, ATP_OK, atp_context_destroy(dead_ctx));
    EXPECT(atp_context_destroy, ATP_ERR_BAD_HANDLE, atp_context_destroy(dead_ctx));
    EXPECT(atp_context_destroy, ATP_ERR_NULL_ARGUMENT, atp_context_destroy(NULL));
    EXPECT(atp_context_destroy, ATP_ERR_BAD_HANDLE, atp_context_destroy(FAKE_HANDLE(atp_context)));

    /* ---- models ---- */
    atp_model model = NULL, buffer_model = NULL, other_model = NULL, dead_model = NULL, m = NULL;
    EXPECT(atp_model_load_demo, ATP_ERR_NULL_ARGUMENT, atp_model_load_demo(NULL, &m));
    EXPECT(atp_model_load_demo, ATP_ERR_NULL_ARGUMENT, atp_model_load_demo(ctx, NULL));
    EXPECT(atp_model_load_demo, ATP_ERR_BAD_HANDLE, atp_model_load_demo(dead_ctx, &m));
    EXPECT(atp_model_load_demo, ATP_ERR_BAD_HANDLE, atp_model_load_demo(FAKE_HANDLE(atp_context), &m));
    EXPECT_THAT(atp_model_load_demo, ATP_OK, atp_model_load_demo(ctx, &model), model != NULL);
    EXPECT(atp_model_load_demo, ATP_OK, atp_model_load_demo(ctx2, &other_model));
    EXPECT(atp_model_load_demo, ATP_OK, atp_model_load_demo(ctx, &dead_model));
    EXPECT(atp_model_destroy, ATP_OK, atp_model_destroy(dead_model));
    EXPECT(atp_model_destroy, ATP_ERR_BAD_HANDLE, atp_model_destroy(dead_model));
    EXPECT(atp_model_destroy, ATP_ERR_NULL_ARGUMENT, atp_model_destroy(NULL));
    EXPECT(atp_model_destroy, ATP_ERR_BAD_HANDLE, atp_model_destroy(FAKE_HANDLE(atp_model)));
    EXPECT(atp_model_destroy, ATP_ERR_BAD_HANDLE, atp_model_destroy((atp_model)ctx)); /* wrong kind */
    EXPECT(atp_context_destroy, ATP_ERR_BAD_HANDLE, atp_context_destroy((atp_context)model)); /* wrong kind */

    EXPECT(atp_model_load_file, ATP_ERR_NULL_ARGUMENT, atp_model_load_file(NULL, model_path, &m));
    EXPECT(atp_model_load_file, ATP_ERR_NULL_ARGUMENT, atp_model_load_file(ctx, NULL, &m));
    EXPECT(atp_model_load_file, ATP_ERR_NULL_ARGUMENT, atp_model_load_file(ctx, model_path, NULL));
    EXPECT(atp_model_load_file, ATP_ERR_BAD_HANDLE, atp_model_load_file(dead_ctx, model_path, &m));
    EXPECT(atp_model_load_file, ATP_ERR_BAD_ARGUMENT, atp_model_load_file(ctx, "", &m));
    EXPECT(atp_model_load_file, ATP_ERR_BAD_ARGUMENT, atp_model_load_file(ctx, "bad\xff\xfe utf-8.onnx", &m));
    EXPECT(atp_model_load_file, ATP_ERR_IO, atp_model_load_file(ctx, "/nonexistent/atpfast/model.onnx", &m));
    EXPECT(atp_model_load_file, ATP_ERR_IO, atp_model_load_file(ctx, scratch, &m)); /* a directory */
    snprintf(path, sizeof path, "%s/garbage.onnx", scratch);
    FILE *f = fopen(path, "wb");
    fputs("this is not a protobuf", f);
    fclose(f);
    EXPECT(atp_model_load_file, ATP_ERR_MODEL, atp_model_load_file(ctx, path, &m));
    snprintf(path, sizeof path, "%s/truncated.onnx", scratch);
    f = fopen(path, "wb");
    fwrite(model_bytes, 1, model_size / 2, f);
    fclose(f);
    EXPECT(atp_model_load_file, ATP_ERR_MODEL, atp_model_load_file(ctx, path, &m));
    EXPECT(atp_model_load_file, ATP_OK, atp_model_load_file(ctx, model_path, &m));
    atp_model_info file_info;
    file_info.struct_size = sizeof file_info;
    EXPECT_THAT(atp_model_describe, ATP_OK, atp_model_describe(m, &file_info), file_info.has_tokenizer == 1); /* vocab.json beside it */

    EXPECT(atp_model_load_buffer, ATP_ERR_NULL_ARGUMENT, atp_model_load_buffer(NULL, model_bytes, model_size, &m));
    EXPECT(atp_model_load_buffer, ATP_ERR_NULL_ARGUMENT, atp_model_load_buffer(ctx, NULL, model_size, &m));
    EXPECT(atp_model_load_buffer, ATP_ERR_NULL_ARGUMENT, atp_model_load_buffer(ctx, model_bytes, model_size, NULL));
    EXPECT(atp_model_load_buffer, ATP_ERR_BAD_HANDLE, atp_model_load_buffer(dead_ctx, model_bytes, model_size, &m));
    EXPECT(atp_model_load_buffer, ATP_ERR_BAD_ARGUMENT, atp_model_load_buffer(ctx, model_bytes, 0, &m));
    EXPECT(atp_model_load_buffer, ATP_ERR_BAD_ARGUMENT, atp_model_load_buffer(ctx, model_bytes, SIZE_MAX, &m));
    EXPECT(atp_model_load_buffer, ATP_ERR_MODEL, atp_model_load_buffer(ctx, model_bytes, model_size / 2, &m));   /* truncated */
    EXPECT(atp_model_load_buffer, ATP_ERR_MODEL, atp_model_load_buffer(ctx, model_bytes, model_size - 1, &m));   /* one byte short */
    EXPECT(atp_model_load_buffer, ATP_ERR_MODEL, atp_model_load_buffer(ctx, model_bytes, 100, &m));
    EXPECT(atp_model_load_buffer, ATP_ERR_MODEL, atp_model_load_buffer(ctx, "\x08\x07", 2, &m));
    EXPECT_THAT(atp_model_load_buffer, ATP_OK, atp_model_load_buffer(ctx, model_bytes, model_size, &buffer_model), buffer_model != NULL);

    atp_model_info model_info;
    EXPECT(atp_model_describe, ATP_ERR_NULL_ARGUMENT, atp_model_describe(NULL, &model_info));
    EXPECT(atp_model_describe, ATP_ERR_NULL_ARGUMENT, atp_model_describe(model, NULL));
    EXPECT(atp_model_describe, ATP_ERR_BAD_HANDLE, atp_model_describe(dead_model, &model_info));
    EXPECT(atp_model_describe, ATP_ERR_BAD_HANDLE, atp_model_describe((atp_model)ctx, &model_info));
    model_info.struct_size = sizeof model_info + 8;
    EXPECT(atp_model_describe, ATP_ERR_BAD_ARGUMENT, atp_model_describe(model, &model_info));
    model_info.struct_size = sizeof model_info;
    EXPECT_THAT(atp_model_describe, ATP_OK, atp_model_describe(model, &model_info),
                model_info.layers == 4 && model_info.vocab_size == 67 && model_info.has_tokenizer == 1 && strlen(model_info.sha256) == 64);
    atp_model_info buffer_info;
    buffer_info.struct_size = sizeof buffer_info;
    EXPECT_THAT(atp_model_describe, ATP_OK, atp_model_describe(buffer_model, &buffer_info),
                buffer_info.has_tokenizer == 0 && strcmp(buffer_info.sha256, model_info.sha256) == 0);

    size_t count = 0;
    char name_probe[64];
    EXPECT(atp_model_node_count, ATP_ERR_NULL_ARGUMENT, atp_model_node_count(model, 14, ATP_NODES_DEFAULT, 0, NULL));
    EXPECT(atp_model_node_count, ATP_ERR_NULL_ARGUMENT, atp_model_node_count(NULL, 14, ATP_NODES_DEFAULT, 0, &count));
    EXPECT(atp_model_node_count, ATP_ERR_BAD_HANDLE, atp_model_node_count(dead_model, 14, ATP_NODES_DEFAULT, 0, &count));
    EXPECT(atp_model_node_count, ATP_ERR_BAD_ARGUMENT, atp_model_node_count(model, 0, ATP_NODES_DEFAULT, 0, &count));
    EXPECT(atp_model_node_count, ATP_ERR_BAD_ARGUMENT, atp_model_node_count(model, 33, ATP_NODES_DEFAULT, 0, &count));
    EXPECT(atp_model_node_count, ATP_ERR_BAD_ARGUMENT, atp_model_node_count(model, SIZE_MAX, ATP_NODES_DEFAULT, 0, &count));
    EXPECT(atp_model_node_count, ATP_ERR_BAD_ARGUMENT, atp_model_node_count(model, 14, 0, 0, &count));
    EXPECT(atp_model_node_count, ATP_ERR_BAD_ARGUMENT, atp_model_node_count(model, 14, 0x100, 0, &count));
    EXPECT(atp_model_node_count, ATP_ERR_BAD_ARGUMENT, atp_model_node_count(model, 14, ATP_NODES_DEFAULT, -1, &count));
    EXPECT(atp_model_node_count, ATP_ERR_BAD_ARGUMENT, atp_model_node_count(model, 14, ATP_NODES_DEFAULT, 3, &count));
    EXPECT_THAT(atp_model_node_count, ATP_OK, atp_model_node_count(model, 14, ATP_NODES_DEFAULT, ATP_POSITIONS_PER_POSITION, &count), count == 29624);
    EXPECT_THAT(atp_model_node_count, ATP_OK, atp_model_node_count(model, 14, ATP_NODES_DEFAULT, ATP_POSITIONS_ALL, &count), count == 29624 / 14);
    size_t space = 0;
    EXPECT(atp_model_node_count, ATP_OK, atp_model_node_count(model, 14, ATP_NODES_ALL, ATP_POSITIONS_BOTH, &space));
    EXPECT(atp_model_node_name, ATP_OK, atp_model_node_name(model, 14, (int32_t)space - 1, name_probe, sizeof name_probe, NULL));

    char name[64];
    size_t needed = 0;
    EXPECT(atp_model_node_name, ATP_ERR_NULL_ARGUMENT, atp_model_node_name(NULL, 14, 0, name, sizeof name, &needed));
    EXPECT(atp_model_node_name, ATP_ERR_BAD_HANDLE, atp_model_node_name(dead_model, 14, 0, name, sizeof name, &needed));
    EXPECT(atp_model_node_name, ATP_ERR_BAD_ARGUMENT, atp_model_node_name(model, 14, -1, name, sizeof name, &needed));
    EXPECT(atp_model_node_name, ATP_ERR_BAD_ARGUMENT, atp_model_node_name(model, 14, (int32_t)space, name, sizeof name, &needed));
    EXPECT(atp_model_node_name, ATP_ERR_BAD_ARGUMENT, atp_model_node_name(model, 0, 0, name, sizeof name, &needed));
    EXPECT(atp_model_node_name, ATP_ERR_NULL_ARGUMENT, atp_model_node_name(model, 14, 0, NULL, sizeof name, &needed));
    memcpy(name, "untouched", 10);
    EXPECT_THAT(atp_model_node_name, ATP_ERR_BUFFER_TOO_SMALL, atp_model_node_name(model, 14, 0, name, 3, &needed),
                needed == strlen("L0.H0.q@0") + 1 && strcmp(name, "untouched") == 0);
    EXPECT_THAT(atp_model_node_name, ATP_ERR_BUFFER_TOO_SMALL, atp_model_node_name(model, 14, 0, NULL, 0, &needed), needed == 10);
    EXPECT_THAT(atp_model_node_name, ATP_OK, atp_model_node_name(model, 14, 0, name, needed, NULL), strcmp(name, "L0.H0.q@0") == 0);

    int32_t node_id = -1;
    EXPECT(atp_model_node_id, ATP_ERR_NULL_ARGUMENT, atp_model_node_id(NULL, 14, "L0.H0.q@0", &node_id));
    EXPECT(atp_model_node_id, ATP_ERR_NULL_ARGUMENT, atp_model_node_id(model, 14, NULL, &node_id));
    EXPECT(atp_model_node_id, ATP_ERR_NULL_ARGUMENT, atp_model_node_id(model, 14, "L0.H0.q@0", NULL));
    EXPECT(atp_model_node_id, ATP_ERR_BAD_HANDLE, atp_model_node_id(dead_model, 14, "L0.H0.q@0", &node_id));
    EXPECT(atp_model_node_id, ATP_ERR_BAD_ARGUMENT, atp_model_node_id(model, 14, "not a node", &node_id));
    EXPECT(atp_model_node_id, ATP_ERR_BAD_ARGUMENT, atp_model_node_id(model, 14, "L9.H0.q@0", &node_id));   /* no layer 9 */
    EXPECT(atp_model_node_id, ATP_ERR_BAD_ARGUMENT, atp_model_node_id(model, 14, "L0.H0.q@14", &node_id));  /* position 14 of 14 */
    EXPECT(atp_model_node_id, ATP_ERR_BAD_ARGUMENT, atp_model_node_id(model, 0, "L0.H0.q@0", &node_id));
    EXPECT_THAT(atp_model_node_id, ATP_OK, atp_model_node_id(model, 14, "L2.mlp.n17@*", &node_id), node_id > 0);
    EXPECT_THAT(atp_model_node_name, ATP_OK, atp_model_node_name(model, 14, node_id, name, sizeof name, NULL), strcmp(name, "L2.mlp.n17@*") == 0);

    int32_t ids[64];
    size_t n_ids = 0;
    EXPECT(atp_model_tokenize, ATP_ERR_NULL_ARGUMENT, atp_model_tokenize(NULL, "Tom", ids, 64, &n_ids));
    EXPECT(atp_model_tokenize, ATP_ERR_NULL_ARGUMENT, atp_model_tokenize(model, NULL, ids, 64, &n_ids));
    EXPECT(atp_model_tokenize, ATP_ERR_NULL_ARGUMENT, atp_model_tokenize(model, "Tom", ids, 64, NULL));
    EXPECT(atp_model_tokenize, ATP_ERR_NULL_ARGUMENT, atp_model_tokenize(model, "Tom", NULL, 64, &n_ids));
    EXPECT(atp_model_tokenize, ATP_ERR_BAD_HANDLE, atp_model_tokenize(dead_model, "Tom", ids, 64, &n_ids));
    EXPECT(atp_model_tokenize, ATP_ERR_INPUT, atp_model_tokenize(model, "When Zyxwv went", ids, 64, &n_ids));
    EXPECT(atp_model_tokenize, ATP_ERR_BAD_ARGUMENT, atp_model_tokenize(model, "Tom \xc3\x28", ids, 64, &n_ids));
    EXPECT(atp_model_tokenize, ATP_ERR_NOT_AVAILABLE, atp_model_tokenize(buffer_model, "Tom", ids, 64, &n_ids));
    const char *clean = "When Tom and Peter went to the school, Peter gave a gift to";
    const char *noise = "When Clara and Rose went to the school, Laura gave a gift to";
    EXPECT_THAT(atp_model_tokenize, ATP_ERR_BUFFER_TOO_SMALL, atp_model_tokenize(model, clean, ids, 3, &n_ids), n_ids == 14);
    EXPECT_THAT(atp_model_tokenize, ATP_ERR_BUFFER_TOO_SMALL, atp_model_tokenize(model, clean, NULL, 0, &n_ids), n_ids == 14);
    int32_t clean_ids[14], noise_ids[14], answer, wrong;
    EXPECT(atp_model_tokenize, ATP_OK, atp_model_tokenize(model, clean, clean_ids, 14, &n_ids));
    EXPECT(atp_model_tokenize, ATP_OK, atp_model_tokenize(model, noise, noise_ids, 14, &n_ids));
    EXPECT(atp_model_tokenize, ATP_OK, atp_model_tokenize(model, "Tom", &answer, 1, &n_ids));
    EXPECT(atp_model_tokenize, ATP_OK, atp_model_tokenize(model, "Peter", &wrong, 1, &n_ids));

    /* ---- runs ---- */
    atp_result result = NULL, r = NULL, kl = NULL, dead_result = NULL;
    atp_options o;
    o.struct_size = sizeof o;
    atp_options_init(&o);
    o.method = ATP_METHOD_ATP;
    o.verify_top = 3;
    EXPECT(atp_run, ATP_ERR_NULL_ARGUMENT, atp_run(NULL, model, &o, clean_ids, noise_ids, 1, 14, &answer, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_NULL_ARGUMENT, atp_run(ctx, NULL, &o, clean_ids, noise_ids, 1, 14, &answer, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_NULL_ARGUMENT, atp_run(ctx, model, &o, NULL, noise_ids, 1, 14, &answer, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_NULL_ARGUMENT, atp_run(ctx, model, &o, clean_ids, NULL, 1, 14, &answer, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_NULL_ARGUMENT, atp_run(ctx, model, &o, clean_ids, noise_ids, 1, 14, NULL, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_NULL_ARGUMENT, atp_run(ctx, model, &o, clean_ids, noise_ids, 1, 14, &answer, NULL, &r));
    EXPECT(atp_run, ATP_ERR_NULL_ARGUMENT, atp_run(ctx, model, &o, clean_ids, noise_ids, 1, 14, &answer, &wrong, NULL));
    EXPECT(atp_run, ATP_ERR_BAD_HANDLE, atp_run(dead_ctx, model, &o, clean_ids, noise_ids, 1, 14, &answer, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_BAD_HANDLE, atp_run(ctx, dead_model, &o, clean_ids, noise_ids, 1, 14, &answer, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_BAD_HANDLE, atp_run(ctx, (atp_model)ctx, &o, clean_ids, noise_ids, 1, 14, &answer, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_BAD_HANDLE, atp_run(FAKE_HANDLE(atp_context), model, &o, clean_ids, noise_ids, 1, 14, &answer, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_BAD_ARGUMENT, atp_run(ctx, other_model, &o, clean_ids, noise_ids, 1, 14, &answer, &wrong, &r)); /* another context's */
    EXPECT(atp_run, ATP_ERR_BAD_ARGUMENT, atp_run(ctx, model, &o, clean_ids, noise_ids, 0, 14, &answer, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_BAD_ARGUMENT, atp_run(ctx, model, &o, clean_ids, noise_ids, 1, 0, &answer, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_BAD_ARGUMENT, atp_run(ctx, model, &o, clean_ids, noise_ids, SIZE_MAX, 14, &answer, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_BAD_ARGUMENT, atp_run(ctx, model, &o, clean_ids, noise_ids, (size_t)1 << 40, (size_t)1 << 40, &answer, &wrong, &r));
    int32_t bad_ids[40];
    memcpy(bad_ids, clean_ids, sizeof clean_ids);
    bad_ids[5] = 67; /* vocabulary is 0..66 */
    EXPECT(atp_run, ATP_ERR_INPUT, atp_run(ctx, model, &o, bad_ids, noise_ids, 1, 14, &answer, &wrong, &r));
    bad_ids[5] = -1;
    EXPECT(atp_run, ATP_ERR_INPUT, atp_run(ctx, model, &o, clean_ids, bad_ids, 1, 14, &answer, &wrong, &r));
    int32_t bad_answer = 1000;
    EXPECT(atp_run, ATP_ERR_INPUT, atp_run(ctx, model, &o, clean_ids, noise_ids, 1, 14, &bad_answer, &wrong, &r));
    EXPECT(atp_run, ATP_ERR_INPUT, atp_run(ctx, model, &o, clean_ids, noise_ids, 1, 14, &answer, &bad_answer, &r));
    int32_t long_ids[40] = {0};
    EXPECT(atp_run, ATP_ERR_INPUT, atp_run(ctx, model, &o, long_ids, long_ids, 1, 40, &answer, &wrong, &r)); /* 40 > 32 positions */

    atp_options bad = o;
    bad.struct_size = sizeof bad - 4;
    EXPECT(atp_run, ATP_ERR_BAD_ARGUMENT, atp_run(ctx, model, &bad, clean_ids, noise_ids, 1, 14, &answer, &wrong, &r));
#define BAD_OPTION(field, value) do { bad = o; bad.field = (value); \
        report("atp_run", ATP_ERR_BAD_ARGUMENT, atp_run(ctx, model, &bad, clean_ids, noise_ids, 1, 14, &answer, &wrong, &r), 1, #field " = " #value); } while (0)
    BAD_OPTION(method, -1);
    BAD_OPTION(method, 8);
    BAD_OPTION(metric, -1);
    BAD_OPTION(metric, 5);
    BAD_OPTION(direction, 2);
    BAD_OPTION(node_types, 0);
    BAD_OPTION(node_types, 0x1FF);
    BAD_OPTION(positions, 3);
    BAD_OPTION(verify_top, -1);
    BAD_OPTION(pairs_per_batch, 0);
    BAD_OPTION(bound_draws, -5);
    BAD_OPTION(budget, 0.0);
    BAD_OPTION(budget, NAN);
    BAD_OPTION(budget, INFINITY);
    BAD_OPTION(bound_alpha, 1.5);
    BAD_OPTION(bound_alpha, -0.1);
    BAD_OPTION(bound_alpha, NAN);
    BAD_OPTION(inclusion_probability, 0.0);
    BAD_OPTION(inclusion_probability, 1.0);

    /* the normalised logit difference of a pair whose clean and noise prompts are the same is undefined */
    bad = o;
    bad.metric = ATP_METRIC_NORM_LOGIT_DIFF;
    EXPECT(atp_run, ATP_ERR_METRIC_UNDEFINED, atp_run(ctx, model, &bad, clean_ids, clean_ids, 1, 14, &answer, &wrong, &r));

    EXPECT_THAT(atp_run, ATP_OK, atp_run(ctx, model, &o, clean_ids, noise_ids, 1, 14, &answer, &wrong, &result), result != NULL);
    EXPECT(atp_run, ATP_OK, atp_run(ctx, model, NULL, clean_ids, noise_ids, 1, 14, &answer, &wrong, &dead_result));
    bad = o;
    bad.metric = ATP_METRIC_KL; /* AtP of KL when noising: no rows, and a note saying why */
    EXPECT(atp_run, ATP_OK, atp_run(ctx, model, &bad, clean_ids, noise_ids, 1, 14, &answer, &wrong, &kl));

    /* ---- results ---- */
    EXPECT(atp_result_destroy, ATP_OK, atp_result_destroy(dead_result));
    EXPECT(atp_result_destroy, ATP_ERR_BAD_HANDLE, atp_result_destroy(dead_result));
    EXPECT(atp_result_destroy, ATP_ERR_NULL_ARGUMENT, atp_result_destroy(NULL));
    EXPECT(atp_result_destroy, ATP_ERR_BAD_HANDLE, atp_result_destroy(FAKE_HANDLE(atp_result)));
    EXPECT(atp_result_destroy, ATP_ERR_BAD_HANDLE, atp_result_destroy((atp_result)model));

    atp_result_info info;
    EXPECT(atp_result_describe, ATP_ERR_NULL_ARGUMENT, atp_result_describe(NULL, &info));
    EXPECT(atp_result_describe, ATP_ERR_NULL_ARGUMENT, atp_result_describe(result, NULL));
    EXPECT(atp_result_describe, ATP_ERR_BAD_HANDLE, atp_result_describe(dead_result, &info));
    info.struct_size = 4;
    EXPECT(atp_result_describe, ATP_ERR_BAD_ARGUMENT, atp_result_describe(result, &info));
    info.struct_size = sizeof info;
    EXPECT_THAT(atp_result_describe, ATP_OK, atp_result_describe(result, &info),
                info.meaningful == 1 && info.rows == 29624 && info.verified == 3 && info.seq_len == 14 && isnan(info.bound_theta));
    atp_result_info kl_info;
    kl_info.struct_size = sizeof kl_info;
    EXPECT_THAT(atp_result_describe, ATP_OK, atp_result_describe(kl, &kl_info), kl_info.meaningful == 0 && kl_info.rows == 0);

    size_t rows = 0;
    EXPECT(atp_result_row_count, ATP_ERR_NULL_ARGUMENT, atp_result_row_count(result, NULL));
    EXPECT(atp_result_row_count, ATP_ERR_NULL_ARGUMENT, atp_result_row_count(NULL, &rows));
    EXPECT(atp_result_row_count, ATP_ERR_BAD_HANDLE, atp_result_row_count(dead_result, &rows));
    EXPECT(atp_result_row_count, ATP_ERR_BAD_HANDLE, atp_result_row_count((atp_result)ctx, &rows));
    EXPECT_THAT(atp_result_row_count, ATP_OK, atp_result_row_count(result, &rows), rows == 29624);

    int32_t node_ids[8], ranks[8];
    double estimates[8], verified[8];
    size_t written = 99;
    EXPECT(atp_result_read, ATP_ERR_NULL_ARGUMENT, atp_result_read(NULL, 0, 8, node_ids, NULL, NULL, NULL, NULL, &written));
    EXPECT(atp_result_read, ATP_ERR_NULL_ARGUMENT, atp_result_read(result, 0, 8, NULL, NULL, NULL, NULL, NULL, &written));
    EXPECT(atp_result_read, ATP_ERR_BAD_HANDLE, atp_result_read(dead_result, 0, 8, node_ids, NULL, NULL, NULL, NULL, &written));
    EXPECT(atp_result_read, ATP_ERR_BAD_ARGUMENT, atp_result_read(result, rows + 1, 8, node_ids, NULL, NULL, NULL, NULL, &written));
    EXPECT(atp_result_read, ATP_ERR_BAD_ARGUMENT, atp_result_read(result, SIZE_MAX, 8, node_ids, NULL, NULL, NULL, NULL, &written));
    EXPECT_THAT(atp_result_read, ATP_OK, atp_result_read(result, rows, 8, node_ids, NULL, NULL, NULL, NULL, &written), written == 0);
    EXPECT_THAT(atp_result_read, ATP_OK, atp_result_read(result, rows - 2, 8, node_ids, ranks, NULL, NULL, NULL, &written),
                written == 2 && ranks[0] == (int32_t)rows - 1 && ranks[1] == (int32_t)rows);
    EXPECT_THAT(atp_result_read, ATP_OK, atp_result_read(result, 0, 8, node_ids, ranks, estimates, NULL, verified, NULL),
                ranks[0] == 1 && ranks[7] == 8 && !isnan(verified[2]) && isnan(verified[3]) && estimates[0] >= estimates[7]);
    EXPECT_THAT(atp_result_read, ATP_OK, atp_result_read(result, 0, 0, node_ids, NULL, NULL, NULL, NULL, &written), written == 0);

    EXPECT(atp_result_node_name, ATP_ERR_NULL_ARGUMENT, atp_result_node_name(NULL, node_ids[0], name, sizeof name, &needed));
    EXPECT(atp_result_node_name, ATP_ERR_BAD_HANDLE, atp_result_node_name(dead_result, node_ids[0], name, sizeof name, &needed));
    EXPECT(atp_result_node_name, ATP_ERR_BAD_ARGUMENT, atp_result_node_name(result, -1, name, sizeof name, &needed));
    EXPECT(atp_result_node_name, ATP_ERR_BAD_ARGUMENT, atp_result_node_name(result, (int32_t)space, name, sizeof name, &needed));
    EXPECT(atp_result_node_name, ATP_ERR_NULL_ARGUMENT, atp_result_node_name(result, node_ids[0], NULL, 5, &needed));
    EXPECT(atp_result_node_name, ATP_ERR_BUFFER_TOO_SMALL, atp_result_node_name(result, node_ids[0], name, 2, &needed));
    EXPECT_THAT(atp_result_node_name, ATP_OK, atp_result_node_name(result, node_ids[0], name, sizeof name, &needed), strlen(name) + 1 == needed);

    char notes[1024];
    EXPECT(atp_result_notes, ATP_ERR_NULL_ARGUMENT, atp_result_notes(NULL, notes, sizeof notes, &needed));
    EXPECT(atp_result_notes, ATP_ERR_BAD_HANDLE, atp_result_notes(dead_result, notes, sizeof notes, &needed));
    EXPECT(atp_result_notes, ATP_ERR_NULL_ARGUMENT, atp_result_notes(kl, NULL, 10, &needed));
    EXPECT_THAT(atp_result_notes, ATP_ERR_BUFFER_TOO_SMALL, atp_result_notes(kl, notes, 10, &needed), needed > 10);
    EXPECT_THAT(atp_result_notes, ATP_OK, atp_result_notes(kl, notes, sizeof notes, &needed), strstr(notes, "meaningless") != NULL);
    EXPECT_THAT(atp_result_notes, ATP_OK, atp_result_notes(result, notes, sizeof notes, &needed), notes[0] == '\0' && needed == 1);

    snprintf(path, sizeof path, "%s/result.jsonl", scratch);
    EXPECT(atp_result_write, ATP_ERR_NULL_ARGUMENT, atp_result_write(NULL, path, ATP_FORMAT_JSONL, 0));
    EXPECT(atp_result_write, ATP_ERR_NULL_ARGUMENT, atp_result_write(result, NULL, ATP_FORMAT_JSONL, 0));
    EXPECT(atp_result_write, ATP_ERR_BAD_HANDLE, atp_result_write(dead_result, path, ATP_FORMAT_JSONL, 0));
    EXPECT(atp_result_write, ATP_ERR_BAD_ARGUMENT, atp_result_write(result, "", ATP_FORMAT_JSONL, 0));
    EXPECT(atp_result_write, ATP_ERR_BAD_ARGUMENT, atp_result_write(result, path, 2, 0));
    EXPECT(atp_result_write, ATP_ERR_BAD_ARGUMENT, atp_result_write(result, path, -1, 0));
    EXPECT(atp_result_write, ATP_ERR_IO, atp_result_write(result, scratch, ATP_FORMAT_CSV, 0));               /* a directory */
    EXPECT(atp_result_write, ATP_ERR_IO, atp_result_write(result, "/proc/atpfast/x.csv", ATP_FORMAT_CSV, 0)); /* cannot create */
    EXPECT(atp_result_write, ATP_OK, atp_result_write(result, path, ATP_FORMAT_JSONL, 5));

    /* ---- destroying a context invalidates its models and results; others are unaffected ---- */
    EXPECT(atp_context_destroy, ATP_OK, atp_context_destroy(ctx));
    EXPECT(atp_model_describe, ATP_ERR_BAD_HANDLE, atp_model_describe(model, &model_info));
    EXPECT(atp_model_destroy, ATP_ERR_BAD_HANDLE, atp_model_destroy(buffer_model));
    EXPECT(atp_result_row_count, ATP_ERR_BAD_HANDLE, atp_result_row_count(result, &rows));
    EXPECT(atp_result_destroy, ATP_ERR_BAD_HANDLE, atp_result_destroy(kl));
    EXPECT(atp_run, ATP_ERR_BAD_HANDLE, atp_run(ctx, model, &o, clean_ids, noise_ids, 1, 14, &answer, &wrong, &r));
    EXPECT(atp_model_load_demo, ATP_ERR_BAD_HANDLE, atp_model_load_demo(ctx, &m));
    EXPECT_THAT(atp_model_describe, ATP_OK, atp_model_describe(other_model, &model_info), model_info.layers == 4);
    EXPECT(atp_context_destroy, ATP_OK, atp_context_destroy(ctx2));

    free(model_bytes);
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}

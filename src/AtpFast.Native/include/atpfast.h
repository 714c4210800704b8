/*
 * atpfast.h — the C ABI of AtpFast: attribution patching (AtP, AtP*, exact activation patching) of transformer
 * language models, from C, C++, Python (ctypes), Rust (FFI) or anything else that can call C.
 *
 * Two libraries implement this header with the same exports:
 *   - libatpfast.so built by NativeAOT (dotnet publish src/AtpFast.Native -c Release -r linux-x64 -p:PublishAot=true):
 *     a self-contained shared object, CPU backend only (ATP_BACKEND_CUDA answers ATP_ERR_NOT_AVAILABLE);
 *   - the hosted shim (src/AtpFast.Native/hosted/atpfast_hosted.c), which starts the .NET runtime through hostfxr
 *     and forwards every call to the JIT-compiled libatpfast.dll; the only route to the GPU backend.
 * docs/embedding.md describes both.
 *
 * General rules (they hold for every function unless its comment says otherwise):
 *   - Every function returns an atp_status: ATP_OK (0) on success, a non-zero code otherwise. No C++ or .NET
 *     exception ever crosses the boundary. Output parameters are written only on success, except the sizes that
 *     tell how large a buffer must be (`needed`, atp_model_tokenize's `count`), which ATP_ERR_BUFFER_TOO_SMALL sets too.
 *   - Every pointer argument is checked: NULL where a value is required gives ATP_ERR_NULL_ARGUMENT. A pointer to
 *     an array is read or written only for the count the call names; the library cannot check that the caller's
 *     memory really is that large. Strings are NUL-terminated UTF-8.
 *   - Handles (atp_context, atp_model, atp_result) are opaque tokens, never addresses: the library looks each one up
 *     in its table of live objects, so a destroyed, foreign or made-up handle gives ATP_ERR_BAD_HANDLE (and a handle
 *     of the wrong kind too), never a crash. A token is never reused within a process.
 *   - Ownership: a context owns the models loaded into it and the results computed in it; destroying the context
 *     destroys them (their handles become invalid). Models and results can be destroyed earlier on their own.
 *     Results stay valid after their model is destroyed. The library never keeps a pointer the caller passed.
 *   - Threading: every function may be called from any thread. Calls that load models or run methods take the
 *     context's lock, so one context runs one computation at a time (a second thread waits); use one context per
 *     thread to compute in parallel (a run itself uses up to the context's `threads` workers of the library's thread
 *     pool). Reading a result or describing a model takes no lock and may run concurrently with anything; a call
 *     racing with the destruction of its handle either completes or answers ATP_ERR_BAD_HANDLE. The last-error
 *     message is per thread.
 *   - The library holds a .NET runtime (NativeAOT's, or the hosted one): load it once per process and never unload it
 *     (dlclose does not unload a .NET runtime). Like any .NET runtime it installs handlers for hardware faults
 *     (SIGSEGV, SIGFPE, ...) that pass faults outside .NET code on to the handlers installed before it, and uses a
 *     real-time signal to suspend its threads for the GC. Do not load both builds into one process: their symbols collide.
 *   - Every function except atp_version, atp_version_string, atp_status_name and atp_last_error sets the calling
 *     thread's last-error message: "" on success, a sentence naming the function and the problem on failure.
 *   - Structs passed in or out start with `struct_size`, which the caller sets to sizeof(the struct) from this
 *     header; a different value (a header from another version) gives ATP_ERR_BAD_ARGUMENT.
 */
#ifndef ATPFAST_H
#define ATPFAST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version ---------------------------------------------------------------------------------------------------- */

#define ATP_VERSION_MAJOR 0
#define ATP_VERSION_MINOR 1
#define ATP_VERSION_PATCH 0
/* The version as one number, major * 10000 + minor * 100 + patch; atp_version() returns the library's. */
#define ATP_VERSION (ATP_VERSION_MAJOR * 10000 + ATP_VERSION_MINOR * 100 + ATP_VERSION_PATCH)
#define ATP_VERSION_STRING "0.1.0"
/* True when a library reporting version v implements this header. Before 1.0 every minor version may change the
 * ABI, so major and minor must match; the library's patch level may be newer. */
#define ATP_VERSION_COMPATIBLE(v) ((v) / 100 == ATP_VERSION / 100 && (v) >= ATP_VERSION)

/* ---- Status codes ------------------------------------------------------------------------------------------------ */

typedef int32_t atp_status;
enum {
    ATP_OK = 0,
    ATP_ERR_NULL_ARGUMENT = 1,     /* a required pointer or handle is NULL */
    ATP_ERR_BAD_HANDLE = 2,        /* destroyed, foreign or wrong-kind handle */
    ATP_ERR_BAD_ARGUMENT = 3,      /* an enum value, size, count, index or struct_size out of range */
    ATP_ERR_IO = 4,                /* a file could not be read or written */
    ATP_ERR_MODEL = 5,             /* not an ONNX model the importer understands (truncated, corrupt, unsupported) */
    ATP_ERR_INPUT = 6,             /* token ids outside the vocabulary, too long, text the tokenizer cannot encode */
    ATP_ERR_NOT_AVAILABLE = 7,     /* a feature this build or this model lacks (CUDA in the NativeAOT build, a tokenizer) */
    ATP_ERR_BUFFER_TOO_SMALL = 8,  /* a caller buffer is smaller than needed; the `needed` output says how large */
    ATP_ERR_METRIC_UNDEFINED = 9,  /* the metric is undefined for the prompts (normalised logit difference of equal LDs) */
    ATP_ERR_NON_FINITE = 10,       /* a NaN or infinity appeared in a pass */
    ATP_ERR_OUT_OF_MEMORY = 11,
    ATP_ERR_INTERNAL = 12          /* a bug: please report it with the last-error message */
};

/* ---- Enums ------------------------------------------------------------------------------------------------------- */

enum { ATP_BACKEND_AUTO = 0, ATP_BACKEND_CPU = 1, ATP_BACKEND_CUDA = 2 };

enum {
    ATP_METHOD_EXACT = 0,        /* exact activation patching of every node (ground truth) */
    ATP_METHOD_ATP = 1,          /* attribution patching */
    ATP_METHOD_ATP_QK = 2,       /* AtP with the QK fix */
    ATP_METHOD_ATP_GD = 3,       /* AtP with GradDrop */
    ATP_METHOD_ATP_STAR = 4,     /* AtP*: QK fix + GradDrop (the default) */
    ATP_METHOD_SUBSAMPLING = 5,
    ATP_METHOD_BLOCKS = 6,
    ATP_METHOD_HIERARCHICAL = 7
};

enum {
    ATP_METRIC_LOGIT_DIFF = 0,       /* logit[answer] - logit[wrong] at the last position (the default) */
    ATP_METRIC_LOGPROB = 1,
    ATP_METRIC_PROB = 2,
    ATP_METRIC_KL = 3,               /* KL(p_clean || p); AtP-family methods give no rows for it when noising */
    ATP_METRIC_NORM_LOGIT_DIFF = 4
};

enum { ATP_DIRECTION_NOISING = 0, ATP_DIRECTION_DENOISING = 1 };

/* Node type flags (bit i = node type i; the order is that of the stable node ids, docs/attribution.md). */
enum {
    ATP_NODE_Q = 1 << 0,
    ATP_NODE_K = 1 << 1,
    ATP_NODE_V = 1 << 2,
    ATP_NODE_Z = 1 << 3,
    ATP_NODE_NEURON = 1 << 4,
    ATP_NODE_RESID_PRE = 1 << 5,
    ATP_NODE_ATTN_OUT = 1 << 6,
    ATP_NODE_MLP_OUT = 1 << 7,
    ATP_NODES_DEFAULT = 0x3F,   /* q, k, v, z, neurons, resid_pre */
    ATP_NODES_ALL = 0xFF
};

enum { ATP_POSITIONS_PER_POSITION = 0, ATP_POSITIONS_ALL = 1, ATP_POSITIONS_BOTH = 2 };

enum { ATP_FAMILY_GPT2 = 0, ATP_FAMILY_GPT_NEOX = 1, ATP_FAMILY_LLAMA = 2 };

enum { ATP_FORMAT_JSONL = 0, ATP_FORMAT_CSV = 1 };

/* ---- Handles ----------------------------------------------------------------------------------------------------- */

typedef struct atp_context_s *atp_context;
typedef struct atp_model_s *atp_model;
typedef struct atp_result_s *atp_result;

/* ---- Structs ----------------------------------------------------------------------------------------------------- */

/* Settings of one run. Fill with atp_options_init (the defaults of docs/attribution.md), then change fields. */
typedef struct atp_options {
    uint32_t struct_size;           /* sizeof(atp_options) */
    int32_t method;                 /* ATP_METHOD_* (default ATP_METHOD_ATP_STAR) */
    int32_t metric;                 /* ATP_METRIC_* (default ATP_METRIC_LOGIT_DIFF) */
    int32_t direction;              /* ATP_DIRECTION_* (default noising) */
    uint32_t node_types;            /* ATP_NODE_* flags, non-zero (default ATP_NODES_DEFAULT) */
    int32_t positions;              /* ATP_POSITIONS_* (default per position) */
    int32_t verify_top;             /* verify the top K by exact patching, >= 0 (default 0) */
    int32_t seed;                   /* seed of the random draws (default 0) */
    int32_t pairs_per_batch;        /* > 0 (default 16) */
    int32_t bound_draws;            /* subsets drawn for the false-negative bound, > 0 (default 200) */
    double budget;                  /* subsampling/blocks/hierarchical budget, forward equivalents per pair (default 100) */
    double bound_alpha;             /* 0: no bound (default); else the bound's alpha in (0, 1) */
    double inclusion_probability;   /* node inclusion probability of the bound and subsampling, in (0, 1) (default 0.1) */
} atp_options;

/* What atp_model_describe reports. */
typedef struct atp_model_info {
    uint32_t struct_size;           /* sizeof(atp_model_info) */
    int32_t family;                 /* ATP_FAMILY_* */
    int32_t layers;
    int32_t heads;
    int32_t kv_heads;
    int32_t head_dim;
    int32_t d_model;
    int32_t d_mlp;
    int32_t vocab_size;
    int32_t max_positions;          /* longest prompt (learned positions); 0: no limit from the model */
    int32_t has_tokenizer;          /* 1 when atp_model_tokenize works for this model */
    int32_t reserved;
    int64_t parameters;
    char backend[32];               /* NUL-terminated backend name, e.g. "cpu-fp32" */
    char sha256[72];                /* NUL-terminated lower-case hex SHA-256 of the model file's bytes */
} atp_model_info;

/* What atp_result_describe reports. Costs are forward-pass equivalents per prompt pair. */
typedef struct atp_result_info {
    uint32_t struct_size;           /* sizeof(atp_result_info) */
    int32_t meaningful;             /* 0 when the method says nothing for this metric and direction (then 0 rows; see notes) */
    int32_t method;
    int32_t metric;
    int32_t direction;
    uint32_t node_types;
    int32_t positions;
    int32_t pairs;
    int32_t seq_len;
    int32_t verified;               /* rows with a verified effect */
    int64_t rows;
    double method_cost;
    double verification_cost;
    double bound_cost;
    double total_cost;              /* method + verification + bound */
    double brute_force_cost;        /* exhaustive exact patching of the selected nodes */
    double bound_theta;             /* NaN: no bound asked for; +inf: no bound could be given (see notes) */
    double baseline_clean;          /* mean unpatched metric of the clean prompts (NaN when not computed) */
    double baseline_noise;
    double elapsed_seconds;
    char backend[32];
} atp_result_info;

/* ---- Library ----------------------------------------------------------------------------------------------------- */

/* The library's version as ATP_VERSION writes it. Check ATP_VERSION_COMPATIBLE(atp_version()) before anything else.
 * Thread-safe; does not touch the last error. */
int32_t atp_version(void);

/* The library's version as text, e.g. "0.1.0". The string is static: never free it. Thread-safe. */
const char *atp_version_string(void);

/* The name of a status code, e.g. "ATP_ERR_BAD_HANDLE" ("ATP_ERR_UNKNOWN" for other values). Static string. */
const char *atp_status_name(atp_status status);

/* The calling thread's last-error message (UTF-8, never NULL; "" after a successful call). The library owns the
 * string: it stays valid until the same thread's next call into the library (other than the four functions that do
 * not touch the last error). Copy it to keep it. */
const char *atp_last_error(void);

/* Fills *options with the defaults. options->struct_size must be sizeof(atp_options). */
atp_status atp_options_init(atp_options *options);

/* ---- Contexts ---------------------------------------------------------------------------------------------------- */

/* Creates a context. backend: ATP_BACKEND_CPU, ATP_BACKEND_AUTO (CUDA when the build and the machine have it, else
 * the CPU; always the CPU in the NativeAOT library) or ATP_BACKEND_CUDA (ATP_ERR_NOT_AVAILABLE in the NativeAOT
 * library). threads: the most CPU threads one run uses (from the library's thread pool), 0 = all cores, at most
 * 1024. The caller owns *out and destroys it with atp_context_destroy. */
atp_status atp_context_create(int32_t backend, int32_t threads, atp_context *out);

/* Destroys a context with every model and result it owns. Waits for a computation running on it in another thread.
 * The handle (and those of its models and results) is invalid afterwards: using it gives ATP_ERR_BAD_HANDLE. */
atp_status atp_context_destroy(atp_context context);

/* ---- Models ------------------------------------------------------------------------------------------------------ */

/* Loads an ONNX model (torch.onnx.export of a GPT-2, GPT-NeoX or Llama decoder) from a file; external data is looked up
 * next to it, and so is a tokenizer (tokenizer.json, encoder.json + vocab.bpe, vocab.json or reference.json). The
 * context owns *out. ATP_ERR_IO: the file cannot be read; ATP_ERR_MODEL: it is not a model the importer recognises. */
atp_status atp_model_load_file(atp_context context, const char *path, atp_model *out);

/* Loads an ONNX model from memory (size bytes at data). The bytes are copied: the caller may free them once the call
 * returns. The model must not use external data, and has no tokenizer. The context owns *out. */
atp_status atp_model_load_buffer(atp_context context, const void *data, size_t size, atp_model *out);

/* Loads the IOI model embedded in the library (4-layer GPT-2-style, 67-token word-level vocabulary; see
 * docs/models.md), with its tokenizer. The context owns *out. */
atp_status atp_model_load_demo(atp_context context, atp_model *out);

/* Destroys a model (its results stay valid). Takes the context's lock: waits for a run using it. */
atp_status atp_model_destroy(atp_model model);

/* Describes a model's architecture. info->struct_size must be sizeof(atp_model_info). */
atp_status atp_model_describe(atp_model model, atp_model_info *info);

/* The number of nodes of node_types (ATP_NODE_* flags) and positions (ATP_POSITIONS_*) for prompts of seq_len tokens:
 * what a run with those options scores. ATP_NODES_ALL with ATP_POSITIONS_BOTH gives the size of the id space. */
atp_status atp_model_node_count(atp_model model, size_t seq_len, uint32_t node_types, int32_t positions, size_t *count);

/* The name of node id (e.g. "L3.H0.z@13", "L1.mlp.n17@*") for prompts of seq_len tokens, copied with its NUL into
 * buffer (capacity bytes). *needed (may be NULL) receives the size the name needs, NUL included; a smaller capacity
 * gives ATP_ERR_BUFFER_TOO_SMALL and leaves buffer untouched. buffer may be NULL when capacity is 0 (a size query). */
atp_status atp_model_node_name(atp_model model, size_t seq_len, int32_t node_id, char *buffer, size_t capacity, size_t *needed);

/* The id of the node named name for prompts of seq_len tokens. ATP_ERR_BAD_ARGUMENT: not a node name, or a node this
 * model or length does not have. */
atp_status atp_model_node_id(atp_model model, size_t seq_len, const char *name, int32_t *node_id);

/* Token ids of text with the model's tokenizer, written to ids (capacity entries); *count receives the number of
 * tokens. A smaller capacity gives ATP_ERR_BUFFER_TOO_SMALL with *count set (ids may be NULL when capacity is 0).
 * ATP_ERR_NOT_AVAILABLE: the model has no tokenizer; ATP_ERR_INPUT: text the tokenizer cannot encode. */
atp_status atp_model_tokenize(atp_model model, const char *text, int32_t *ids, size_t capacity, size_t *count);

/* ---- Running a method -------------------------------------------------------------------------------------------- */

/* Runs options' method on n_pairs prompt pairs of seq_len tokens each: clean_ids and noise_ids hold n_pairs * seq_len
 * token ids (row-major: pair i's prompt starts at i * seq_len), answer_ids and wrong_ids n_pairs ids (the metric
 * compares them at the last position). options may be NULL for the defaults. The model must belong to context. The
 * library copies the inputs; the context owns *out. Takes the context's lock for the whole run.
 * ATP_ERR_INPUT: ids outside the vocabulary or a prompt longer than the model allows; ATP_ERR_METRIC_UNDEFINED,
 * ATP_ERR_NON_FINITE: see the status codes. */
atp_status atp_run(atp_context context, atp_model model, const atp_options *options,
                   const int32_t *clean_ids, const int32_t *noise_ids, size_t n_pairs, size_t seq_len,
                   const int32_t *answer_ids, const int32_t *wrong_ids, atp_result *out);

/* ---- Results ----------------------------------------------------------------------------------------------------- */

/* Destroys a result. */
atp_status atp_result_destroy(atp_result result);

/* Describes a result. info->struct_size must be sizeof(atp_result_info). */
atp_status atp_result_describe(atp_result result, atp_result_info *info);

/* The number of ranked rows (every selected node; 0 when the result is not meaningful). */
atp_status atp_result_row_count(atp_result result, size_t *rows);

/* Copies rows first .. first + n - 1 in rank order, n = min(capacity, rows - first), into the arrays that are not NULL
 * (each must hold capacity entries; at least one must be given): node ids (stable ids, see atp_result_node_name),
 * ranks (1 = largest estimate), estimates (what the ranking uses), signed estimates, verified effects (the exact
 * signed mean effect, NaN for rows not verified). *written (may be NULL) receives n. first > rows gives
 * ATP_ERR_BAD_ARGUMENT; first == rows copies nothing. */
atp_status atp_result_read(atp_result result, size_t first, size_t capacity,
                           int32_t *node_ids, int32_t *ranks, double *estimates, double *signed_estimates,
                           double *verified_effects, size_t *written);

/* The name of node id in this result's id space; buffer, capacity and needed as in atp_model_node_name. */
atp_status atp_result_node_name(atp_result result, int32_t node_id, char *buffer, size_t capacity, size_t *needed);

/* The result's notes (things the user must know, e.g. why there are no rows), one per line, "" when none; buffer,
 * capacity and needed as in atp_model_node_name. */
atp_status atp_result_notes(atp_result result, char *buffer, size_t capacity, size_t *needed);

/* Writes the tidy table (docs/attribution.md, "Result rows") to path as ATP_FORMAT_JSONL or ATP_FORMAT_CSV: the
 * first top rows, or all when top is 0. Written through a temporary file and a rename. */
atp_status atp_result_write(atp_result result, const char *path, int32_t format, size_t top);

#ifdef __cplusplus
}
#endif

#endif /* ATPFAST_H */

/*
 * A fake libnvidia-ml.so.1 for gpuenv's probe tests.
 *
 * The tests compile it, put its directory on LD_LIBRARY_PATH and let the real
 * nvidia-ml-py binding load it, so the probe runs through pynvml unchanged.
 * It implements the NVML entry points the probe's code paths reach (and their
 * close relatives), with nvml.h's signatures and return codes.
 *
 * Configuration is read at the first init from the file named by
 * FAKE_NVML_CONFIG. One statement a line; '#' starts a comment line:
 *
 *   driver 550.54.15                 nvmlSystemGetDriverVersion
 *   cuda 12040                       both CUDA driver version calls
 *   cuda_v1 12040 / cuda_v2 12040    one of them only
 *   gpu NAME | UUID | M.m | MEM_MIB  a GPU (index = order of the gpu lines)
 *   migmode CURRENT PENDING          the last GPU supports MIG (else: NOT_SUPPORTED)
 *   migmax N                         its nvmlDeviceGetMaxMigDeviceCount (default 7)
 *   mig SLOT | NAME | UUID | MEM_MIB a MIG device of the last GPU in slot SLOT
 *                                    (implies "migmode 1 1" unless given)
 *   fail CALL CODE [TARGET]          CALL (the C symbol; "nvmlInit" = every init
 *                                    entry point) returns CODE; TARGET is "*"
 *                                    (default), "N" (anything on GPU N) or "N:S"
 *                                    (MIG slot S of GPU N)
 *
 * MIG device handles answer nvmlDeviceGetCudaComputeCapability with
 * NOT_SUPPORTED, so a probe that asks them instead of the parent fails loudly.
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

#define MAX_GPUS 16
#define MAX_SLOTS 8
#define MAX_FAILS 64
#define TEXT 96
#define MIB 1048576ULL
#define MEMORY_V2_VERSION 0x02000028u
#define ANY -1

struct nvmlDevice_st {
    int used;
    int gpu;  /* physical index */
    int slot; /* MIG slot, or ANY for the physical GPU */
    char name[TEXT];
    char uuid[TEXT];
    int cc_major, cc_minor;
    unsigned long long memory;
    int mig_supported;
    unsigned int mig_current, mig_pending, mig_max;
};
typedef struct nvmlDevice_st *nvmlDevice_t;

typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

struct failure {
    char call[TEXT];
    int code;
    int gpu;  /* ANY or a GPU index */
    int slot; /* ANY or a MIG slot */
};

static struct nvmlDevice_st gpus[MAX_GPUS];
static struct nvmlDevice_st migs[MAX_GPUS][MAX_SLOTS];
static int gpu_count;
static char driver_version[TEXT] = "550.54.15";
static int cuda_v1 = 12040, cuda_v2 = 12040;
static struct failure failures[MAX_FAILS];
static int failure_count;
static int loaded;
static int init_count;

/* -- configuration ----------------------------------------------------------- */

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
    return s;
}

/* Split s at '|' into at most n trimmed fields; returns how many. */
static int split(char *s, char **fields, int n) {
    int count = 0;
    while (count < n) {
        char *bar = strchr(s, '|');
        if (bar) *bar = '\0';
        fields[count++] = trim(s);
        if (!bar) break;
        s = bar + 1;
    }
    return count;
}

static int bad(const char *path, int line, const char *what) {
    fprintf(stderr, "fake_nvml: %s:%d: %s\n", path, line, what);
    return 0;
}

static void set_device(struct nvmlDevice_st *d, int gpu, int slot, const char *name,
                       const char *uuid, long mem_mib) {
    memset(d, 0, sizeof *d);
    d->used = 1;
    d->gpu = gpu;
    d->slot = slot;
    snprintf(d->name, TEXT, "%s", name);
    snprintf(d->uuid, TEXT, "%s", uuid);
    d->memory = (unsigned long long)mem_mib * MIB;
}

static int parse_gpu(char *rest) {
    char *f[4];
    int major, minor;
    if (gpu_count >= MAX_GPUS || split(rest, f, 4) != 4) return 0;
    if (sscanf(f[2], "%d.%d", &major, &minor) != 2) return 0;
    struct nvmlDevice_st *d = &gpus[gpu_count];
    set_device(d, gpu_count, ANY, f[0], f[1], atol(f[3]));
    d->cc_major = major;
    d->cc_minor = minor;
    d->mig_max = 7;
    gpu_count++;
    return 1;
}

static int parse_mig(char *rest) {
    char *f[4];
    if (gpu_count == 0 || split(rest, f, 4) != 4) return 0;
    int slot = atoi(f[0]);
    struct nvmlDevice_st *parent = &gpus[gpu_count - 1];
    if (slot < 0 || slot >= MAX_SLOTS) return 0;
    set_device(&migs[parent->gpu][slot], parent->gpu, slot, f[1], f[2], atol(f[3]));
    if (!parent->mig_supported) {
        parent->mig_supported = 1;
        parent->mig_current = parent->mig_pending = 1;
    }
    return 1;
}

static int parse_fail(char *rest) {
    struct failure *f = &failures[failure_count];
    char target[TEXT] = "*";
    if (failure_count >= MAX_FAILS) return 0;
    if (sscanf(rest, "%95s %d %95s", f->call, &f->code, target) < 2) return 0;
    f->gpu = f->slot = ANY;
    if (strcmp(target, "*") != 0) {
        int n = sscanf(target, "%d:%d", &f->gpu, &f->slot);
        if (n < 1) return 0;
    }
    failure_count++;
    return 1;
}

static int parse_line(char *line) {
    char *rest = line;
    while (*rest && !isspace((unsigned char)*rest)) rest++;
    if (*rest) *rest++ = '\0';
    rest = trim(rest);
    struct nvmlDevice_st *last = gpu_count ? &gpus[gpu_count - 1] : NULL;
    if (strcmp(line, "driver") == 0) {
        snprintf(driver_version, TEXT, "%s", rest);
    } else if (strcmp(line, "cuda") == 0) {
        cuda_v1 = cuda_v2 = atoi(rest);
    } else if (strcmp(line, "cuda_v1") == 0) {
        cuda_v1 = atoi(rest);
    } else if (strcmp(line, "cuda_v2") == 0) {
        cuda_v2 = atoi(rest);
    } else if (strcmp(line, "gpu") == 0) {
        return parse_gpu(rest);
    } else if (strcmp(line, "migmode") == 0 && last) {
        last->mig_supported = 1;
        return sscanf(rest, "%u %u", &last->mig_current, &last->mig_pending) == 2;
    } else if (strcmp(line, "migmax") == 0 && last) {
        return sscanf(rest, "%u", &last->mig_max) == 1 && last->mig_max <= MAX_SLOTS;
    } else if (strcmp(line, "mig") == 0) {
        return parse_mig(rest);
    } else if (strcmp(line, "fail") == 0) {
        return parse_fail(rest);
    } else {
        return 0;
    }
    return 1;
}

static int load_config(void) {
    const char *path = getenv("FAKE_NVML_CONFIG");
    char buffer[512];
    int number = 0;
    if (!path) return bad("(unset)", 0, "FAKE_NVML_CONFIG is not set");
    FILE *file = fopen(path, "r");
    if (!file) return bad(path, 0, "cannot open");
    while (fgets(buffer, sizeof buffer, file)) {
        char *line = trim(buffer);
        number++;
        if (*line == '\0' || *line == '#') continue;
        if (!parse_line(line)) {
            fclose(file);
            return bad(path, number, "cannot parse this line");
        }
    }
    fclose(file);
    return 1;
}

/* -- plumbing ------------------------------------------------------------------ */

static int injected(const char *call, const struct nvmlDevice_st *d) {
    for (int i = 0; i < failure_count; i++) {
        const struct failure *f = &failures[i];
        if (strcmp(f->call, call) != 0) continue;
        if (f->gpu != ANY && (!d || d->gpu != f->gpu)) continue;
        if (f->slot != ANY && (!d || d->slot != f->slot)) continue;
        return f->code;
    }
    return NVML_SUCCESS;
}

static struct nvmlDevice_st *device(nvmlDevice_t handle) {
    struct nvmlDevice_st *first_gpu = &gpus[0], *first_mig = &migs[0][0];
    if (handle >= first_gpu && handle < first_gpu + MAX_GPUS && handle->used) return handle;
    if (handle >= first_mig && handle < first_mig + MAX_GPUS * MAX_SLOTS && handle->used)
        return handle;
    return NULL;
}

static nvmlReturn_t copy_text(char *out, unsigned int length, const char *text) {
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(text) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, text);
    return NVML_SUCCESS;
}

/* Every entry point starts with one of these: not initialised, injected failure. */
#define ENTER()                                                       \
    do {                                                              \
        if (!init_count) return NVML_ERROR_UNINITIALIZED;             \
        int rc_ = injected(__func__, NULL);                           \
        if (rc_) return rc_;                                          \
    } while (0)

#define ENTER_DEVICE(handle, d)                                       \
    struct nvmlDevice_st *d = device(handle);                         \
    do {                                                              \
        if (!init_count) return NVML_ERROR_UNINITIALIZED;             \
        if (!d) return NVML_ERROR_INVALID_ARGUMENT;                   \
        int rc_ = injected(__func__, d);                              \
        if (rc_) return rc_;                                          \
    } while (0)

static nvmlReturn_t init(const char *call) {
    if (!loaded) {
        if (!load_config()) return NVML_ERROR_UNKNOWN;
        loaded = 1;
    }
    int rc = injected("nvmlInit", NULL);
    if (!rc) rc = injected(call, NULL);
    if (rc) return rc;
    init_count++;
    return NVML_SUCCESS;
}

/* -- init and system ----------------------------------------------------------- */

nvmlReturn_t nvmlInit(void) { return init(__func__); }
nvmlReturn_t nvmlInit_v2(void) { return init(__func__); }
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return init(__func__);
}

nvmlReturn_t nvmlShutdown(void) {
    ENTER();
    init_count--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 6: return "Not Found";
    case 9: return "Driver Not Loaded";
    case 12: return "NVML Shared Library Not Found";
    case 13: return "Function Not Found";
    case 15: return "GPU is lost";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    ENTER();
    return copy_text(version, length, driver_version);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version) {
    ENTER();
    if (!version) return NVML_ERROR_INVALID_ARGUMENT;
    *version = cuda_v1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) {
    ENTER();
    if (!version) return NVML_ERROR_INVALID_ARGUMENT;
    *version = cuda_v2;
    return NVML_SUCCESS;
}

/* -- devices ------------------------------------------------------------------- */

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    ENTER();
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = (unsigned int)gpu_count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *handle) {
    if (!init_count) return NVML_ERROR_UNINITIALIZED;
    if (index >= (unsigned int)gpu_count || !handle) return NVML_ERROR_INVALID_ARGUMENT;
    int rc = injected(__func__, &gpus[index]);
    if (rc) return rc;
    *handle = &gpus[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *handle) {
    return nvmlDeviceGetHandleByIndex_v2(index, handle);
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t handle, char *name, unsigned int length) {
    ENTER_DEVICE(handle, d);
    return copy_text(name, length, d->name);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t handle, char *uuid, unsigned int length) {
    ENTER_DEVICE(handle, d);
    return copy_text(uuid, length, d->uuid);
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t handle, int *major, int *minor) {
    ENTER_DEVICE(handle, d);
    if (d->slot != ANY) return NVML_ERROR_NOT_SUPPORTED; /* see the header comment */
    if (!major || !minor) return NVML_ERROR_INVALID_ARGUMENT;
    *major = d->cc_major;
    *minor = d->cc_minor;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t handle, nvmlMemory_t *memory) {
    ENTER_DEVICE(handle, d);
    if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = d->memory;
    memory->used = d->memory / 100;
    memory->free = d->memory - memory->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t handle, nvmlMemory_v2_t *memory) {
    ENTER_DEVICE(handle, d);
    if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
    if (memory->version != MEMORY_V2_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    memory->total = d->memory;
    memory->reserved = 0;
    memory->used = d->memory / 100;
    memory->free = d->memory - memory->used;
    return NVML_SUCCESS;
}

/* -- MIG ----------------------------------------------------------------------- */

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t handle, unsigned int *current,
                                  unsigned int *pending) {
    ENTER_DEVICE(handle, d);
    if (d->slot != ANY || !d->mig_supported) return NVML_ERROR_NOT_SUPPORTED;
    if (!current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    *current = d->mig_current;
    *pending = d->mig_pending;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t handle, unsigned int *count) {
    ENTER_DEVICE(handle, d);
    if (d->slot != ANY || !d->mig_supported) return NVML_ERROR_NOT_SUPPORTED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = d->mig_max;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t handle, unsigned int index,
                                                 nvmlDevice_t *mig) {
    ENTER_DEVICE(handle, d);
    if (d->slot != ANY || !d->mig_supported) return NVML_ERROR_NOT_SUPPORTED;
    if (index >= d->mig_max || !mig) return NVML_ERROR_INVALID_ARGUMENT;
    struct nvmlDevice_st *m = &migs[d->gpu][index];
    if (!m->used || d->mig_current != 1) return NVML_ERROR_NOT_FOUND;
    int rc = injected(__func__, m);
    if (rc) return rc;
    *mig = m;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t handle, unsigned int *is_mig) {
    ENTER_DEVICE(handle, d);
    if (!is_mig) return NVML_ERROR_INVALID_ARGUMENT;
    *is_mig = d->slot != ANY;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t mig,
                                                          nvmlDevice_t *handle) {
    ENTER_DEVICE(mig, d);
    if (d->slot == ANY || !handle) return NVML_ERROR_INVALID_ARGUMENT;
    *handle = &gpus[d->gpu];
    return NVML_SUCCESS;
}

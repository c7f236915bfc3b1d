/*
 * A stand-in for libnvidia-ml.so.1, built by the tests with
 * `gcc -shared -fPIC`, so the real nvml-wrapper code path (dlopen, symbol
 * lookup, the C calling convention, struct layouts) runs on machines
 * without a GPU.
 *
 * It implements only the entry points Plumbline calls. Its answers describe
 * two H100 GPUs with driver 580.95.05. FAKE_NVML_MODE (read at nvmlInit_v2;
 * the compile-time default is FAKE_NVML_DEFAULT_MODE) selects:
 *   ok        the answers above
 *   mismatch  nvmlInit_v2 returns NVML_ERROR_LIB_RM_VERSION_MISMATCH
 *   nodriver  nvmlInit_v2 returns NVML_ERROR_DRIVER_NOT_LOADED
 *   disagree  driver 580.82.07 and GPU 1 reports compute capability 8.0
 */
#include <stdlib.h>
#include <string.h>

#ifndef FAKE_NVML_DEFAULT_MODE
#define FAKE_NVML_DEFAULT_MODE "ok"
#endif

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_LIB_RM_VERSION_MISMATCH 18

typedef struct {
    int index;
    const char *name;
    const char *uuid;
    unsigned int minor;
    int cc_major, cc_minor;
    unsigned long long memory_total;
    unsigned int mig;
    int ecc;
} fake_device;

static fake_device devices[] = {
    {0, "NVIDIA H100 80GB HBM3", "GPU-00000000-1111-2222-3333-444444444444", 0, 9, 0, 85520809984ULL, 0, 1},
    {1, "NVIDIA H100 80GB HBM3", "GPU-55555555-6666-7777-8888-999999999999", 1, 9, 0, 85520809984ULL, 1, 1},
};
static const unsigned int device_count = 2;
static int initialized = 0;
static const char *mode = FAKE_NVML_DEFAULT_MODE;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

static int is_mode(const char *m) { return strcmp(mode, m) == 0; }

static nvmlReturn_t copy_string(const char *s, char *out, unsigned int len) {
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(s) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, s);
    return NVML_SUCCESS;
}

static fake_device *dev(void *handle) {
    fake_device *d = (fake_device *)handle;
    if (d < devices || d >= devices + device_count) return NULL;
    return d;
}

nvmlReturn_t nvmlInit_v2(void) {
    const char *env = getenv("FAKE_NVML_MODE");
    if (env != NULL && env[0] != '\0') mode = env;
    if (is_mode("mismatch")) return NVML_ERROR_LIB_RM_VERSION_MISMATCH;
    if (is_mode("nodriver")) return NVML_ERROR_DRIVER_NOT_LOADED;
    initialized = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
    initialized = 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    return copy_string(is_mode("disagree") ? "580.82.07" : "580.95.05", version, length);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (version == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *version = 13000;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *count = device_count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **device) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (index >= device_count || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &devices[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(void *device, char *name, unsigned int length) {
    fake_device *d = dev(device);
    if (d == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    return copy_string(d->name, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(void *device, char *uuid, unsigned int length) {
    fake_device *d = dev(device);
    if (d == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    return copy_string(d->uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetMinorNumber(void *device, unsigned int *minor) {
    fake_device *d = dev(device);
    if (d == NULL || minor == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *minor = d->minor;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(void *device, int *major, int *minor) {
    fake_device *d = dev(device);
    if (d == NULL || major == NULL || minor == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *major = d->cc_major;
    *minor = d->cc_minor;
    if (is_mode("disagree") && d->index == 1) {
        *major = 8;
        *minor = 0;
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(void *device, nvmlMemory_v2_t *memory) {
    fake_device *d = dev(device);
    if (d == NULL || memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = d->memory_total;
    memory->reserved = 0;
    memory->free = d->memory_total;
    memory->used = 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(void *device, unsigned int *current, unsigned int *pending) {
    fake_device *d = dev(device);
    if (d == NULL || current == NULL || pending == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *current = d->mig;
    *pending = d->mig;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEccMode(void *device, int *current, int *pending) {
    fake_device *d = dev(device);
    if (d == NULL || current == NULL || pending == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *current = d->ecc;
    *pending = d->ecc;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return "RM has detected an NVML/RM version mismatch.";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}

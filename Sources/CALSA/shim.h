#ifndef EDGE_GATEWAY_CALSA_SHIM_H
#define EDGE_GATEWAY_CALSA_SHIM_H
#include <alsa/asoundlib.h>

/// snd_pcm_hw_params_alloca is a macro over alloca; the gateway uses the heap variants instead.
static inline int edge_snd_pcm_hw_params_malloc(snd_pcm_hw_params_t **params) {
    return snd_pcm_hw_params_malloc(params);
}
#endif

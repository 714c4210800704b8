/*
 * hosted_check: what differs in the hosted route (src/AtpFast.Native/hosted/atpfast_hosted.c): ATP_BACKEND_CUDA reaches
 * the GPU backend's own answer instead of the NativeAOT "not available in this build", and the shim reports a runtime
 * that cannot start as a status. Prints one line per check; run by HostedRouteTests.cs.
 */
#include <stdio.h>
#include <string.h>

#include "atpfast.h"

int main(void)
{
    printf("version %d %s\n", atp_version(), atp_version_string());
    atp_context ctx = NULL;
    atp_model model = NULL;
    atp_status s = atp_context_create(ATP_BACKEND_CUDA, 0, &ctx);
    printf("context_create cuda %s | %s\n", atp_status_name(s), atp_last_error());
    if (s == ATP_OK) {
        s = atp_model_load_demo(ctx, &model);
        printf("model_load_demo cuda %s | %s\n", atp_status_name(s), atp_last_error());
        atp_context_destroy(ctx);
    }
    s = atp_context_create(ATP_BACKEND_CUDA + 7, 0, &ctx);
    printf("context_create bad %s | %s\n", atp_status_name(s), atp_last_error());
    return 0;
}

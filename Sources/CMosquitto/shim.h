#ifndef EDGE_GATEWAY_CMOSQUITTO_SHIM_H
#define EDGE_GATEWAY_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#endif

/*
 * ember/ember.h — everything a program linking libember needs.
 */
#ifndef EMBER_EMBER_H
#define EMBER_EMBER_H

#include <ember/core.h>
#include <ember/codec.h>
#include <ember/rpc.h>
#include <ember/root.h>
#include <ember/node.h>
#include <ember/metrics.h>
#include <ember/pb.h>

#endif

/* Segmentation head kernels (placeholder until issue 5 lands). */
#include "vimk/vimk.h"
